"""The pieces `shrink run` is made of: inputs, the run directory and its step cache, the steps,
progress, the manifest, and the CLI. `shrink.pipeline.run` chains them."""
