# Plaintext messages: every whitepaper type plus Ack, Error, Close and a
# protocol version. Rule: pure encode/decode, strict validation, only typed
# errors out. Encoding is canonical JSON (see cjson) with bytes as base64.
from meshlink import PROTOCOL_VERSION, cjson
from meshlink._compat import b64decode, b64encode
from meshlink.errors import DecodeError, LocalProtocolError, VersionError
from meshlink.nodeid import is_id

MAX_TTL = 255
MAX_PATH_NODES = 64
MAX_TEXT_CHARS = 256
MAX_UINT = (1 << 53) - 1  # fits a JSON number on every platform

# Field kinds
K_ID = "id"  # UUID text
K_OPT_ID = "id?"  # UUID text or null (null = broadcast)
K_BYTES = "bytes"  # base64 text on the wire, bytes in Python
K_TTL = "ttl"
K_PORT = "port"
K_UINT = "uint"
K_TEXT = "text"
K_PATH = "path"  # list of UUID text
K_INTS = "ints"  # list of uint
K_TEXTS = "texts"  # list of short text
K_ROUTES = "routes"  # list of [UUID text, uint, hops 0..255, proof text]


def _bad(name, why):
    return DecodeError("field '%s': %s" % (name, why))


def _uint(name, v, hi):
    if type(v) is not int or v < 0 or v > hi:
        raise _bad(name, "expected an integer in 0..%d" % hi)
    return v


def _text(name, v):
    if type(v) is not str or len(v) > MAX_TEXT_CHARS:
        raise _bad(name, "expected text of at most %d characters" % MAX_TEXT_CHARS)
    return v


def _list(name, v):
    if type(v) is not list or len(v) > MAX_PATH_NODES:
        raise _bad(name, "expected a list of at most %d items" % MAX_PATH_NODES)
    return v


def _chk_id(name, v):
    if not is_id(v):
        raise _bad(name, "expected a lowercase UUID")
    return v


def _chk_opt_id(name, v):
    return None if v is None else _chk_id(name, v)


def _chk_bytes(name, v):
    try:
        return b64decode(v)
    except DecodeError:
        raise _bad(name, "expected base64")


def _chk_path(name, v):
    for x in _list(name, v):
        if not is_id(x):
            raise _bad(name, "expected a list of lowercase UUIDs")
    return v


def _chk_ints(name, v):
    for x in _list(name, v):
        _uint(name, x, MAX_UINT)
    return v


def _chk_texts(name, v):
    for x in _list(name, v):
        _text(name, x)
    return v


MAX_ROUTES = 80  # entries per Routes message (at most ~15.6 KB of JSON with proofs)
MAX_PROOF_CHARS = 128  # an entry's proof: base64 of Ed25519 key || signature (meshlink.auth)


def _chk_routes(name, v):
    if type(v) is not list or len(v) > MAX_ROUTES:
        raise _bad(name, "expected a list of at most %d entries" % MAX_ROUTES)
    for x in v:
        if type(x) is not list or len(x) != 4 or not is_id(x[0]):
            raise _bad(name, "expected [node id, seq, hops, proof] entries")
        _uint(name, x[1], MAX_UINT)
        _uint(name, x[2], MAX_TTL)
        if type(x[3]) is not str or len(x[3]) > MAX_PROOF_CHARS:
            raise _bad(name, "expected a proof of at most %d characters" % MAX_PROOF_CHARS)
    return v


# kind -> checker(name, wire value) -> Python value; a table, not an if-chain,
# because every field of every relayed message passes through here.
_CHECKERS = {
    K_ID: _chk_id,
    K_OPT_ID: _chk_opt_id,
    K_BYTES: _chk_bytes,
    K_TTL: lambda name, v: _uint(name, v, MAX_TTL),
    K_PORT: lambda name, v: _uint(name, v, 65535),
    K_UINT: lambda name, v: _uint(name, v, MAX_UINT),
    K_TEXT: _text,
    K_PATH: _chk_path,
    K_INTS: _chk_ints,
    K_TEXTS: _chk_texts,
    K_ROUTES: _chk_routes,
}


def _check_field(name, kind, v):
    """Validate one wire value; return its Python value."""
    checker = _CHECKERS.get(kind)
    if checker is None:
        raise LocalProtocolError("unknown field kind " + kind)
    return checker(name, v)


# Relay fast path: canonical encodings of the two routed types, keys sorted.
_MESH_FMT = ('{"data":"%s","from":"%s","key":"%s","message_id":"%s","origin_id":"%s",'
             '"path":[%s],"sig":"%s","to":%s,"ttl":%d,"type":"mesh","v":%d}')
_ACK_FMT = ('{"ack_for":"%s","from":"%s","key":"%s","message_id":"%s","path":[%s],"sig":"%s",'
            '"to":"%s","ttl":%d,"type":"ack","v":%d}')


def _id_list(ids):
    return ",".join(['"' + i + '"' for i in ids])


def _opt_id(node_id):
    return "null" if node_id is None else '"' + node_id + '"'


class Message:
    """Base of all messages. FIELDS lists (wire name, attribute, kind)."""

    TYPE = ""
    FIELDS = ()

    # Fields that may be left out when constructing: attribute -> the
    # attribute whose value it copies (still always present on the wire).
    DEFAULTS = {}
    # Bytes fields that may be left out when constructing (empty until signed).
    UNSIGNED = ()

    def __init__(self, **values):
        for attr, source in self.DEFAULTS.items():
            if attr not in values and source in values:
                values[attr] = values[source]
        for attr in self.UNSIGNED:
            if attr not in values:
                values[attr] = b""
        for _wire, attr, _kind in self.FIELDS:
            if attr not in values:
                raise LocalProtocolError("%s needs %s" % (self.TYPE, attr))
            setattr(self, attr, values.pop(attr))
        if values:
            raise LocalProtocolError("%s has no field %s" % (self.TYPE, list(values)))

    def to_obj(self, check=True):
        """The JSON object for this message, validated unless check is False."""
        obj = {"type": self.TYPE, "v": PROTOCOL_VERSION}
        for wire, attr, kind in self.FIELDS:
            value = getattr(self, attr)
            if not check:
                obj[wire] = b64encode(value) if kind == K_BYTES else value
                continue
            if kind == K_BYTES:
                # bytes only need a type check; re-decoding our own base64 is waste
                if type(value) is not bytes and type(value) is not bytearray:
                    raise LocalProtocolError("%s.%s must be bytes" % (self.TYPE, attr))
                obj[wire] = b64encode(value)
                continue
            try:
                _check_field(wire, kind, value)
            except (DecodeError, TypeError):
                raise LocalProtocolError("%s.%s is invalid" % (self.TYPE, attr))
            obj[wire] = value
        return obj

    def encode(self, check=True):
        """Canonical JSON bytes. Raises LocalProtocolError on invalid fields.

        check=False skips field validation: only for messages built from a
        decoded (validated) one, such as a relay's copy, on the hot path.
        """
        return cjson.dumps(self.to_obj(check), check)

    def __eq__(self, other):
        if type(other) is not type(self):
            return False
        for _w, attr, _k in self.FIELDS:
            if getattr(self, attr) != getattr(other, attr):
                return False
        return True

    def __repr__(self):
        return "%s(%s)" % (self.TYPE, ", ".join(
            "%s=%r" % (a, getattr(self, a)) for _w, a, _k in self.FIELDS))


class Handshake(Message):
    """First handshake flight: offered versions and suites, opaque body."""
    TYPE = "handshake"
    FIELDS = (("versions", "versions", K_INTS), ("suites", "suites", K_TEXTS),
              ("listen_port", "listen_port", K_PORT), ("body", "body", K_BYTES))


class HandshakeAck(Message):
    """Second flight: the chosen version and suite, opaque body."""
    TYPE = "handshake_ack"
    FIELDS = (("version", "version", K_UINT), ("suite", "suite", K_TEXT),
              ("listen_port", "listen_port", K_PORT), ("body", "body", K_BYTES))


class HandshakeFinish(Message):
    """Third flight: the initiator's identity and signature, opaque body."""
    TYPE = "handshake_finish"
    FIELDS = (("body", "body", K_BYTES),)


class HandshakeCookie(Message):
    """A responder under load answers the first flight with a cookie (no KEM work)."""
    TYPE = "handshake_cookie"
    FIELDS = (("body", "body", K_BYTES),)


class Data(Message):
    """Application bytes for the directly connected peer."""
    TYPE = "data"
    FIELDS = (("data", "data", K_BYTES),)


class Ping(Message):
    """Keepalive; the peer echoes seq and sent_ms in a Pong (RTT)."""
    TYPE = "ping"
    FIELDS = (("seq", "seq", K_UINT), ("sent_ms", "sent_ms", K_UINT))


class Pong(Message):
    """Answer to a Ping, echoing its fields."""
    TYPE = "pong"
    FIELDS = (("seq", "seq", K_UINT), ("sent_ms", "sent_ms", K_UINT))


class MeshMessage(Message):
    """Routed message. dst None means broadcast; path lists the hops so far.

    message_id is unique per transmission attempt (relays deduplicate on it and
    Acks name it); origin_id is the message_id of the first attempt, so an
    end-to-end retry (fresh message_id) is still delivered to the application
    only once. origin_id defaults to message_id. key and sig are the origin's
    Ed25519 public key and signature (meshlink.auth; empty until signed).
    """
    TYPE = "mesh"
    FIELDS = (("from", "src", K_ID), ("to", "dst", K_OPT_ID), ("data", "data", K_BYTES),
              ("message_id", "message_id", K_ID), ("origin_id", "origin_id", K_ID),
              ("ttl", "ttl", K_TTL), ("path", "path", K_PATH), ("key", "key", K_BYTES),
              ("sig", "sig", K_BYTES))
    DEFAULTS = {"origin_id": "message_id"}
    UNSIGNED = ("key", "sig")

    def encode(self, check=True):
        """Canonical JSON bytes; check=False (relays) formats them directly.

        Every field of a validated message is an ID, base64 text or an int,
        none of which JSON escapes, so a format string yields exactly the
        bytes cjson would (tests compare the two on both interpreters).
        """
        if check:
            return Message.encode(self)
        # fields are set by __init__/from_obj through FIELDS, hence the ignores
        return (_MESH_FMT % (b64encode(self.data), self.src, b64encode(self.key),  # type: ignore
                             self.message_id, self.origin_id,  # type: ignore
                             _id_list(self.path), b64encode(self.sig),  # type: ignore
                             _opt_id(self.dst), self.ttl, PROTOCOL_VERSION)).encode()  # type: ignore


class Ack(Message):
    """End-to-end acknowledgement of message ack_for, routed like a mesh message;
    key and sig make it the destination's delivery proof (meshlink.auth)."""
    TYPE = "ack"
    FIELDS = (("from", "src", K_ID), ("to", "dst", K_ID), ("ack_for", "ack_for", K_ID),
              ("message_id", "message_id", K_ID), ("ttl", "ttl", K_TTL),
              ("path", "path", K_PATH), ("key", "key", K_BYTES), ("sig", "sig", K_BYTES))
    UNSIGNED = ("key", "sig")

    def encode(self, check=True):
        """Canonical JSON bytes; check=False formats them directly (see MeshMessage)."""
        if check:
            return Message.encode(self)
        return (_ACK_FMT % (self.ack_for, self.src, b64encode(self.key),  # type: ignore
                            self.message_id, _id_list(self.path),  # type: ignore
                            b64encode(self.sig), self.dst, self.ttl,  # type: ignore
                            PROTOCOL_VERSION)).encode()


class Error(Message):
    """A peer tells us why it is refusing something (code is machine-readable)."""
    TYPE = "error"
    FIELDS = (("code", "code", K_TEXT), ("reason", "reason", K_TEXT))


class Close(Message):
    """Orderly end of a session, so a truncated stream is detectable."""
    TYPE = "close"
    FIELDS = (("reason", "reason", K_TEXT),)


class Beacon(Message):
    """UDP discovery beacon: "node_id listens on TCP port". Unauthenticated by
    design: it only suggests an address; the handshake decides trust."""
    TYPE = "beacon"
    FIELDS = (("node_id", "node_id", K_ID), ("port", "port", K_PORT))


class GatewayBeacon(Message):
    """UDP beacon for boards: a gateway's board-link ports. Like Beacon it only
    suggests an address; the PSK handshake proves the gateway."""
    TYPE = "gw_beacon"
    FIELDS = (("node_id", "node_id", K_ID), ("udp_port", "udp_port", K_PORT),
              ("tcp_port", "tcp_port", K_PORT))


MESSAGE_TYPES = {}
for _cls in (Handshake, HandshakeAck, HandshakeFinish, HandshakeCookie, Data, Ping, Pong,
             MeshMessage, Ack, Error, Close, Beacon, GatewayBeacon):
    MESSAGE_TYPES[_cls.TYPE] = _cls


def from_obj(obj):
    """Build a message from a decoded JSON object, validating every field.

    Raises:
        DecodeError: not an object, unknown type, missing/extra/invalid field.
        VersionError: a protocol version we do not speak.
    """
    if type(obj) is not dict:
        raise DecodeError("a message is a JSON object")
    v = obj.get("v")
    if type(v) is not int:
        raise DecodeError("missing protocol version 'v'")
    if v != PROTOCOL_VERSION:
        raise VersionError("protocol version %d not supported" % v)
    cls = MESSAGE_TYPES.get(obj.get("type")) if type(obj.get("type")) is str else None
    if cls is None:
        raise DecodeError("unknown message type")
    if len(obj) != len(cls.FIELDS) + 2:
        raise DecodeError("%s: wrong set of fields" % cls.TYPE)
    msg = object.__new__(cls)  # fields are validated here, not in __init__
    for wire, attr, kind in cls.FIELDS:
        if wire not in obj:
            raise _bad(wire, "missing")
        setattr(msg, attr, _CHECKERS[kind](wire, obj[wire]))
    return msg


def decode(data):
    """Decode canonical-or-not JSON bytes into a Message. Raises DecodeError/VersionError."""
    return from_obj(cjson.loads(data))


# -- Routing control (appended for the meshlink router's lazy-push broadcast).
# Link-local: sent to one neighbour, never forwarded. Message ids are UUIDs,
# so the id lists reuse the path field kind (at most MAX_PATH_NODES ids).


class IHave(Message):
    """Lazy push: the sender holds these broadcast messages (Plumtree IHAVE)."""
    TYPE = "ihave"
    FIELDS = (("ids", "ids", K_PATH),)


class Graft(Message):
    """Push broadcasts to me eagerly again, and resend these ids if you have them."""
    TYPE = "graft"
    FIELDS = (("ids", "ids", K_PATH),)


class Prune(Message):
    """Stop pushing broadcast payloads to me; announce them with IHave instead."""
    TYPE = "prune"
    FIELDS = ()


class Routes(Message):
    """Destination announcements: [dst, seq, hops, proof] per entry (hops 255 =
    unreachable; proof: dst's signature of seq, meshlink.auth); see
    meshlink.router_dv and docs/PROTOCOL.md."""
    TYPE = "routes"
    FIELDS = (("routes", "routes", K_ROUTES),)


class HopAck(Message):
    """The sender took these directed messages (mesh or Ack) from the
    receiver: per-hop evidence (meshlink.router_hop, docs/PROTOCOL.md)."""
    TYPE = "hopack"
    FIELDS = (("ids", "ids", K_PATH),)


class SeqRequest(Message):
    """Ask dst (through the neighbours' routes) for an announcement of
    sequence number seq or newer: a starved route (meshlink.router_dv_req)."""
    TYPE = "seqreq"
    FIELDS = (("dst", "dst", K_ID), ("seq", "seq", K_UINT))


for _cls in (IHave, Graft, Prune, Routes, HopAck, SeqRequest):
    MESSAGE_TYPES[_cls.TYPE] = _cls
