"""Submit step: the builder from ``ActiveLearningWorkChain.get_builder_from_protocol``, sent to the daemon."""

from __future__ import annotations

import traitlets as tl

from aiida_mofmlp.app.configure.model import ConfigureModel
from aiida_mofmlp.app.messages import daemon_status, readable_error
from aiida_mofmlp.app.structure.model import StructureModel


class SubmitModel(tl.HasTraits):
    """Builds and submits one run from the structure and configure models."""

    blockers = tl.List(tl.Unicode())  # why the run cannot be submitted now
    message = tl.Unicode("")
    process_pk = tl.Int(None, allow_none=True)

    def __init__(self, structure: StructureModel, configure: ConfigureModel, **kwargs):
        super().__init__(**kwargs)
        self.structure = structure
        self.configure = configure

    def check(self, daemon: bool = True) -> list[str]:
        """Every reason the run cannot be submitted (empty: ready); also kept in ``blockers``."""
        blockers = []
        if self.structure.structure is None:
            blockers.append("structure: choose a framework in step 1 (intake must accept it)")
        blockers += self.configure.validate(self.structure.elements)
        if daemon:
            running, sentence = daemon_status()
            if not running:
                blockers.append(sentence)
        self.blockers = blockers
        return blockers

    def build(self):
        """The ActiveLearningWorkChain builder for the current choices (no physics of the app's own)."""
        from aiida_mofmlp.workflows.active_learning.workchain import ActiveLearningWorkChain

        configure = self.configure
        builder = ActiveLearningWorkChain.get_builder_from_protocol(
            self.structure.structure,
            configure.foundation_node(),
            configure.codes(),
            guest=configure.guest_node(),
            protocol=configure.protocol,
            overrides=configure.overrides(),
            options=configure.options(),
            replay_set=configure.replay_set(),
        )
        if configure.properties:  # the loop runs them on its final ensemble, as its last step
            from aiida import orm

            from aiida_mofmlp.app.results.properties import codes_for_properties
            from aiida_mofmlp.workflows.active_learning.properties_step import codes_in_inputs
            from aiida_mofmlp.workflows.properties.registry import property_key

            labels = list(configure.properties)
            builder.properties = orm.List([property_key(label) for label in labels])
            own = codes_in_inputs(builder)
            extra = codes_for_properties(labels, dict(own))
            builder.property_codes = {
                kind: code for kind, code in extra.items() if code is not None and kind not in own
            }
        return builder

    def submit(self) -> int | None:
        """Check, build and submit; the new process' pk, or None with ``message`` saying why not."""
        if self.check():
            self.message = "Not submitted:\n" + "\n".join(f"- {line}" for line in self.blockers)
            return None
        try:
            from aiida.engine import submit

            builder = self.build()
            configure = self.configure
            builder.metadata.label = (
                f"{self.structure.source} + {configure.guest or 'empty'} ({configure.protocol})"
            )
            builder.metadata.description = "submitted from the aiida-mofmlp AiiDAlab app"
            node = submit(builder)
            if configure.properties:  # the labels, for the results step
                from aiida_mofmlp.app.results.properties import PROPERTIES_EXTRA

                node.base.extras.set(PROPERTIES_EXTRA, list(configure.properties))
        except Exception as error:
            self.message = readable_error(error, "submitting the run")
            return None
        self.process_pk = node.pk
        self.message = f"Submitted ActiveLearningWorkChain<{node.pk}>: follow it in the results step."
        return node.pk
