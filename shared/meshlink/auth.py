# End-to-end authentication above the link (docs/PROTOCOL.md §11): what an
# origin signs in a mesh message, a destination in an Ack (its delivery
# proof) and a destination in its route announcement (its sequence number).
# Rule: sans-I/O and no crypto library here. Ed25519 is injected: `verify`
# (public key, data, signature) -> bool and one sign(data) -> signature per
# node ID we hold a key for (our own, a gateway's boards), so this module
# stays importable on MicroPython, where no board signs or verifies.
import binascii

from meshlink._compat import b64decode, b64encode
from meshlink.errors import DecodeError, LocalProtocolError
from meshlink.nodeid import node_id_text_from_public_key

KEY_BYTES = 32  # Ed25519 public key
SIG_BYTES = 64  # Ed25519 signature
PROOF_CHARS = 128  # base64 of key || signature, an announcement entry's proof
# Domain separation: each signed form starts with its own label, so a
# signature over one form never verifies as another.
MESH_LABEL = b"meshlink/1 e2e mesh\x00"
ACK_LABEL = b"meshlink/1 e2e ack\x00"
ANNOUNCE_LABEL = b"meshlink/1 e2e announce\x00"
CACHE_MAX = 4096  # verified (destination, seq) pairs per generation (two generations)


def _raw(uuid_text):
    # ids were validated by messages; unhexlify is C on both interpreters
    return binascii.unhexlify(uuid_text.replace("-", ""))


def mesh_signed_bytes(msg):
    """What a mesh message's origin signs: every field but ttl, path, key, sig."""
    to = b"\x00" if msg.dst is None else b"\x01" + _raw(msg.dst)
    return b"".join((MESH_LABEL, _raw(msg.src), to, _raw(msg.message_id),
                     _raw(msg.origin_id), msg.data))


def ack_signed_bytes(ack):
    """What a destination signs in its Ack: who confirms, to whom, which attempt."""
    return b"".join((ACK_LABEL, _raw(ack.src), _raw(ack.dst), _raw(ack.ack_for)))


def announce_signed_bytes(dst, seq):
    """What a destination signs to own its announcement sequence number."""
    return ANNOUNCE_LABEL + _raw(dst) + seq.to_bytes(8, "big")


class Auth:
    """Signs for the node IDs whose keys we hold; checks everyone else's.

    Args:
        verify: verify(public_key, data, signature) -> bool (Ed25519); it
            must return False, never raise, on malformed input.
        cache_max: verified announcements remembered per generation.
    """

    def __init__(self, verify, cache_max=CACHE_MAX):
        self._verify = verify
        self._signers = {}  # node_id -> (public key, sign(data) -> signature)
        self.cache_max = cache_max
        self._cache = {}  # (dst, seq) -> proof text, this generation
        self._cache_old = {}
        self.verified = 0  # signature checks run (cache misses)

    def add_signer(self, node_id, public_key, sign):
        """Sign as node_id from now on. Raises LocalProtocolError if the key is not node_id's."""
        if node_id_text_from_public_key(public_key) != node_id:
            raise LocalProtocolError("key does not match node ID " + node_id)
        self._signers[node_id] = (public_key, sign)

    def remove_signer(self, node_id):
        self._signers.pop(node_id, None)

    def _signer(self, node_id):
        s = self._signers.get(node_id)
        if s is None:
            raise LocalProtocolError("no signing key for " + node_id)
        return s

    def _check(self, node_id, key, data, sig):
        """True if key names node_id (its hash) and sig is its signature over data."""
        if len(key) != KEY_BYTES or len(sig) != SIG_BYTES:
            return False
        if node_id_text_from_public_key(key) != node_id:
            return False
        self.verified += 1
        return bool(self._verify(key, data, sig))

    # -- mesh messages and Acks ----------------------------------------------
    def sign_mesh(self, msg):
        """Set msg.key and msg.sig as its origin (msg.src). Raises LocalProtocolError."""
        key, sign = self._signer(msg.src)
        msg.key = key
        msg.sig = sign(mesh_signed_bytes(msg))
        return msg

    def check_mesh(self, msg):
        """True if msg's origin signed it (relays may have changed only ttl and path)."""
        return self._check(msg.src, msg.key, mesh_signed_bytes(msg), msg.sig)

    def sign_ack(self, ack):
        """Set ack.key and ack.sig as the destination (ack.src). Raises LocalProtocolError."""
        key, sign = self._signer(ack.src)
        ack.key = key
        ack.sig = sign(ack_signed_bytes(ack))
        return ack

    def check_ack(self, ack):
        """True if ack.src signed this Ack."""
        return self._check(ack.src, ack.key, ack_signed_bytes(ack), ack.sig)

    # -- announcements ----------------------------------------------------------
    def announce_proof(self, dst, seq):
        """The proof for an entry [dst, seq, ...] (base64 of key || signature):
        ours if we hold dst's key, else the one we verified, else ""."""
        key = (dst, seq)
        proof = self._cache.get(key) or self._cache_old.get(key)
        s = self._signers.get(dst)
        if proof is None and s is not None:
            proof = b64encode(s[0] + s[1](announce_signed_bytes(dst, seq)))
            self._remember(key, proof)
        return proof or ""

    def check_announce(self, dst, seq, proof):
        """True if proof is dst's signature of seq; each (dst, seq) is verified
        once (a cached pair compares the proof text only). A bare entry (proof
        "") is true only if this exact (dst, seq) was verified before."""
        key = (dst, seq)
        known = self._cache.get(key) or self._cache_old.get(key)
        if known is not None:
            return not proof or known == proof
        if len(proof) != PROOF_CHARS:
            return False
        try:
            raw = b64decode(proof)
        except DecodeError:
            return False
        if not self._check(dst, raw[:KEY_BYTES], announce_signed_bytes(dst, seq),
                           raw[KEY_BYTES:]):
            return False
        self._remember(key, proof)
        return True

    def _remember(self, key, proof):
        if len(self._cache) >= self.cache_max:
            self._cache_old = self._cache
            self._cache = {}
        self._cache[key] = proof
