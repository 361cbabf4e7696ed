# Per-neighbour announcement batches of router_dv: proofs once per
# (destination, seq, neighbour)
# (docs/PROTOCOL.md §7.4, §11.4): which entries of a batch go bare (proof "")
# to one neighbour. Rule: sans-I/O; imported by router_dv only when a batch
# needs it (never on a board, where announcements are off), so a 96K heap
# does not hold its code otherwise.
INFINITY = 255
CANDS = 5  # router_dv: first candidate index in a table entry


def bare(dv, rows, p):
    """rows ([dst, seq, hops, proof] entries) as neighbour p gets them: bare
    where p holds dst's proof for seq, i.e. p announced (dst, seq) to us, or
    every neighbour up since p got our whole table got (dst, seq) from us.
    Returns rows itself when nothing changes, else a copy."""
    j = dv.pn[2].get(p)
    if j is None:
        return rows
    proved = dv.pn[1]
    table = dv.table
    out = None
    k = 0
    for dst, seq, hops, proof in rows:
        if proof and hops != INFINITY:
            pr = proved.get(dst)
            held = pr is not None and pr[0] == seq and pr[1] >= j
            if not held:
                e = table.get(dst)
                if e is not None and p in e[CANDS::3]:
                    held = e[e.index(p, CANDS) + 1] == seq
            if held:
                if out is None:
                    out = list(rows)
                out[k] = [dst, seq, hops, ""]
        k += 1
    return rows if out is None else out


def sent(dv, rows, n):
    """Batch n gave every neighbour up then the proven entries of rows."""
    for dst, seq, hops, proof in rows:
        if proof and hops != INFINITY:
            dv.pn[1][dst] = (seq, n)


def forget(dv):
    """Drop what we remember of destinations that left the table."""
    me = dv.r.node_id
    proved = dv.pn[1]
    for d in [d for d in proved if d not in dv.table and d != me]:
        del proved[d]


def batch(dv, out, full, n):
    """Append batch n's (peer, Routes) for the neighbours not in full (which
    got the whole table): what changed, with bare entries where the
    neighbour holds the proof."""
    dirty = dv.dirty
    dv.dirty = set()
    rows = dv._entries(sorted(dirty))
    shared = dv._messages(rows)  # for every peer that needs no other
    for p in dv.r.up:
        if p in full:
            continue
        mine = bare(dv, rows, p)
        for m in shared if mine is rows else dv._messages(mine):
            out.append((p, m))
    sent(dv, rows, n)
