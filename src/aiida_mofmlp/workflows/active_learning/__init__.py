"""The active-learning loop: settings, builders and the ActiveLearningWorkChain (``workchain``)."""
