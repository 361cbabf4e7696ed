"""The node's own web port: the live dashboard and Prometheus /metrics.

Rule: no framework and no CDN; the server is asyncio streams, the page is
vanilla JS and SVG from static/. It is handed a snapshot() callable and never
imports the node or the board service (docs/ARCHITECTURE.md).
"""
