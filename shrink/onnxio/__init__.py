"""Reading, checking and writing ONNX files: the helpers export, quantize and bench share.

A leaf: nothing here imports a stage, so every stage can import it.
"""
