"""The foundation campaign behind ``scripts/build_foundation.py`` (no AiiDA): structures, GFN1-xTB labels,
bootstrap MD, training, evaluation and the model card, each stage resumable from its cache."""
