"""The file names of a pruned model directory (written by `shrink prune`, read by every stage)."""

PLAN_FILE = "plan.json"  # the plan, the spec that rebuilds the dense architecture, the card, the check
WEIGHTS_FILE = "pruned.safetensors"  # the pruned weights
