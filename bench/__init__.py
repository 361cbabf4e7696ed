"""MeshLink's benchmarks (`make bench`, or `python -m bench` from the repository root).

One module per part of the tree it measures; bench/__main__.py runs them all.
Not part of the installed package: may import anything (meshlink, meshlink_gw,
examples). Figures are measured now, on this machine; tests never assert them.
"""
