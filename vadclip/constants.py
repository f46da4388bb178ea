"""Facts shared by several modules, defined once."""

SNIPPET_FRAMES = 16   # frames per snippet: one feature row of the official VadCLIP features
RANDOM_WEIGHTS_WARNING = "RANDOM CLIP WEIGHTS: scores are meaningless (test/timing mode)"
