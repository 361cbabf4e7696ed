"""MeshLink gateway and full node (CPython): asyncio runtime, transports, CLI."""
