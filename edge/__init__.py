"""nanolink.edge: frame sources and the sender (runs on Python 3.6, JetPack 4.6)."""
