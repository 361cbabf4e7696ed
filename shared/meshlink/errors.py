# The one error hierarchy of MeshLink. Every module raises only these.
# Rule: a peer's bad input is a RemoteProtocolError subclass; our own misuse
# is a LocalProtocolError. Plain classes only (MicroPython has no chaining).


class MeshLinkError(Exception):
    """Base of every MeshLink error."""


class ConfigError(MeshLinkError):
    """A configuration value is missing, of the wrong type or out of range."""


class TransportError(MeshLinkError):
    """A transport (socket, serial port, BLE link, broker) failed."""


class ProtocolError(MeshLinkError):
    """Something about the protocol went wrong."""


class LocalProtocolError(ProtocolError):
    """We were asked to do something the protocol does not allow."""


class RemoteProtocolError(ProtocolError):
    """A peer sent something the protocol does not allow."""


class DecodeError(RemoteProtocolError):
    """Bytes could not be decoded into a frame or message."""


class FrameTooLargeError(DecodeError):
    """A length prefix announced more than the configured maximum."""


class AuthError(RemoteProtocolError):
    """A MAC, AEAD tag or signature did not verify, or a key was wrong."""


class ReplayError(RemoteProtocolError):
    """A record's sequence number was already seen or is too old."""


class HandshakeError(RemoteProtocolError):
    """A handshake message was out of order, malformed or refused."""


class VersionError(RemoteProtocolError):
    """The peer speaks a protocol version or suite we do not accept."""


class SessionExpiredError(LocalProtocolError):
    """The session used up its message or time budget and must be rekeyed."""


class StoreError(MeshLinkError):
    """A local store refused a write (a full disk, an I/O error): nothing was kept."""
