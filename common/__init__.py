"""nanolink.common: what the edge and the host share. Runs on Python 3.6 without torch."""
