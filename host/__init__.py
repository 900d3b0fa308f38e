"""nanolink.host: the receiver, its display and saving, and the demo."""
