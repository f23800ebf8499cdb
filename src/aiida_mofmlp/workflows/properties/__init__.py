"""Property work chains that use a trained ensemble: adsorption, dynamics, phonons, the model card.

Each reports the ensemble's trust on the frames it visited (:mod:`.trust`)."""
