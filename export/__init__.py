"""nanolink.export: everything that needs torch (models, training, evaluation, ONNX export)."""
