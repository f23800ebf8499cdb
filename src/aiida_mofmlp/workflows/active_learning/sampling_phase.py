"""Initial sampling: MD (or CP2K AIMD) of the framework and its guests, the first selection.

A mixin of :class:`~aiida_mofmlp.workflows.active_learning.workchain.ActiveLearningWorkChain` (its steps
read and write the work chain's context; the strategy object decides what differs between strategies).
"""

from __future__ import annotations

from aiida import orm
from aiida.common import AttributeDict

from aiida_mofmlp.workflows.cp2k.aimd import AimdWorkChain
from aiida_mofmlp.workflows.cp2k.labelling import LabellingWorkChain
from aiida_mofmlp.workflows.functions import active_learning as alf
from aiida_mofmlp.workflows.functions.selection import select_frames
from aiida_mofmlp.workflows.raspa.isotherm import IsothermWorkChain


class InitialSamplingPhase:
    """Steps of the loop's sampling phase (mixed into ActiveLearningWorkChain)."""

    # --- initial sampling ----------------------------------------------------------------------------
    def should_sample_initially(self) -> bool:
        return bool(self.ctx.params["initial_sampling"]["enabled"])

    def run_initial_sampling(self):
        """Foundation-model MD of the empty framework per temperature; RASPA snapshots; optional AIMD."""
        framework = alf.build_starting_frames(self.inputs.structure, orm.Dict({"loadings": []}))
        self.ctx.empty_runs = self._submit_md_grid(
            framework,
            [0],
            self.inputs.foundation_model,
            "sampling",
            self.ctx.temperatures,
            wait=False,  # the loaded runs need only RASPA's snapshots: they start alongside these
            **self._sampling_md_length(),
        )
        if self.ctx.loadings and "raspa" in self.inputs:
            inputs = AttributeDict(self.exposed_inputs(IsothermWorkChain, "raspa"))
            inputs.structure = self.inputs.structure
            inputs.guest = self.inputs.guest
            inputs.metadata = {"call_link_label": "raspa_snapshots"}
            self.to_context(raspa=self.submit(IsothermWorkChain, **inputs))
        aimd_steps = int(self.ctx.params["initial_sampling"]["aimd_steps"])
        if aimd_steps > 0:
            labelling = self.exposed_inputs(LabellingWorkChain, "labelling")
            cp2k = labelling["single_point"]["cp2k"]
            builder = AimdWorkChain.get_builder_from_protocol(
                cp2k["code"],
                self.inputs.structure,
                protocol=self.ctx.params["stages"].get("cp2k"),
                steps=aimd_steps,
                options=dict(cp2k["metadata"]["options"]),
            )
            builder.metadata.call_link_label = "aimd"
            self.to_context(aimd=self.submit(builder))
        self.report(
            f"initial sampling: {len(self.ctx.empty_runs)} MD run(s) of the empty framework"
            + (", RASPA snapshots" if "raspa" in self.ctx else "")
            + (f", AIMD {aimd_steps} steps" if aimd_steps else "")
        )

    def run_loaded_sampling(self):
        """A starting frame per loading (RASPA guests folded into the cell), then MD per temperature."""
        snapshots = None
        if "raspa" in self.ctx:
            node = self.ctx.raspa
            if "snapshots" in node.outputs:
                snapshots = node.outputs.snapshots
            else:
                self.report(
                    f"RASPA {node.process_label}<{node.pk}> gave no snapshots; placing guests instead"
                )
        kwargs = {"snapshots": snapshots} if snapshots is not None else {}
        if "guest" in self.inputs:
            kwargs["guest"] = self.inputs.guest
        self.ctx.starting_frames = alf.build_starting_frames(
            self.inputs.structure, orm.Dict({"loadings": self.ctx.loadings}), **kwargs
        )
        self._out_history("starting_frames", self.ctx.starting_frames)
        self.ctx.loaded_runs = self._submit_md_grid(
            self.ctx.starting_frames,
            range(1, len(self.ctx.starting_frames)),
            self.inputs.foundation_model,
            "sampling",
            self.ctx.temperatures,
            **self._sampling_md_length(),
        )
        self._await_pending()

    def _sampling_md_length(self) -> dict:
        """``steps`` / ``dump_interval`` of the foundation-model MD when ``initial_sampling`` sets them."""
        sampling = self.ctx.params["initial_sampling"]
        lengths = {}
        if sampling.get("md_steps"):
            lengths["steps"] = int(sampling["md_steps"])
        if sampling.get("dump_interval"):
            lengths["dump_interval"] = int(sampling["dump_interval"])
        return lengths

    def select_initial(self):
        """Pool = sampling MD frames + starting frames (+ AIMD); pick per loading with SOAP."""
        extra = {"starting_frames": self.ctx.starting_frames}
        tags = {"starting_frames": {"iteration": 0}}
        self._join_extra_candidates(extra, tags)
        if "aimd" in self.ctx:
            if self.ctx.aimd.is_finished_ok:
                extra["aimd"] = self.ctx.aimd.outputs.trajectory
                tags["aimd"] = {"source": "aimd", "iteration": 0}
            else:
                self.report(
                    f"AIMD <{self.ctx.aimd.pk}> failed ({self.ctx.aimd.exit_message}); going on without"
                )
        pool, blowups, _ = self._collect_md({**self.ctx.empty_runs, **self.ctx.loaded_runs}, extra, tags)
        if pool is None or len(pool) == 0:
            return self.exit_codes.ERROR_INITIAL_SAMPLING_FAILED.format(
                detail="no MD frames and no starting frames"
            )
        self._out_history("pool_00", pool)
        sizes = self.ctx.params["initial_selection"]
        quota = {
            "0": int(sizes["framework"]),
            **{str(n): int(sizes["per_loading"]) for n in self.ctx.loadings},
        }
        parameters = {
            **self.ctx.params["selection"],
            "group_by": "loading",
            "quota": quota,
            "sigma_window": None,
        }
        outputs = select_frames(pool=pool, parameters=orm.Dict(parameters), **self._training_kwargs())
        self._record_selection(outputs)
        if "selected" not in outputs:
            return self.exit_codes.ERROR_INITIAL_SAMPLING_FAILED.format(
                detail="the selection picked no frame"
            )
        self.ctx.to_label = outputs["selected"]
        self.ctx.row.update(
            {"n_explored": len(pool), "n_blowups": blowups, "n_selected": len(outputs["selected"])}
        )
        self.report(
            f"initial sampling: {len(pool)} frames, {blowups} MD blow-up(s); "
            f"selected {len(outputs['selected'])}"
        )
        return None

    def _join_extra_candidates(self, extra: dict, tags: dict) -> None:
        """Add ``extra_candidates`` (once) to the sets ``extra`` that _collect_md merges into a pool."""
        if not self.ctx.extra_pending:
            return
        given = dict(self.inputs.extra_candidates)
        for key, frames in given.items():
            extra[f"extra_{key}"] = frames
            tag = {"source": "extra_candidates", "extra_key": key, "iteration": self.ctx.iteration}
            tags[f"extra_{key}"] = {**tag, **self.strategy.extra_candidate_tag(key)}
        self.report(
            f"extra candidates: {sum(len(frames) for frames in given.values())} frame(s) of {sorted(given)} "
            f"joined to the pool of iteration {self.ctx.iteration}"
        )
        self.ctx.extra_pending = False

    # --- initial sampling: AIMD and flat histogram (strategy aimd_flat_histogram) ----------------------
    def samples_with_aimd(self) -> bool:
        return self.strategy.samples_with_aimd

    def run_aimd_sampling(self):
        """CP2K AIMD of the framework at every temperature of ``aimd_flat_histogram.temperatures``."""
        settings = self.ctx.params["aimd_flat_histogram"]
        cp2k = self.exposed_inputs(LabellingWorkChain, "labelling")["single_point"]["cp2k"]
        self.ctx.aimd_runs = {}
        for temperature in settings["temperatures"]:
            builder = AimdWorkChain.get_builder_from_protocol(
                cp2k["code"],
                self.inputs.structure,
                protocol=self.ctx.params["stages"].get("cp2k"),
                temperature=float(temperature),
                steps=int(settings["aimd_steps"]),
                timestep_fs=float(settings["timestep_fs"]),
                thermostat_timecon_fs=float(settings["thermostat_timecon_fs"]),
                discard_steps=settings.get("discard_steps"),
                options=dict(cp2k["metadata"]["options"]),
            )
            key = f"aimd_T{round(float(temperature))}"
            builder.metadata.call_link_label = key
            self.to_context(**{key: self.submit(builder)})
            self.ctx.aimd_runs[key] = {
                "source": "aimd",
                "target_temperature": float(temperature),
                "iteration": 0,
            }
        self.report(
            f"initial sampling: CP2K AIMD of {settings['aimd_steps']} steps at {settings['temperatures']} K"
        )

    def select_flat_histogram(self):
        """Pool = the AIMD frames with their labels; one frame per energy-per-atom bin (flat histogram)."""
        settings = self.ctx.params["aimd_flat_histogram"]
        sets, tags = {}, {"drop_stress": True}
        for key, tag in self.ctx.aimd_runs.items():
            node = self.ctx[key]
            if not node.is_finished_ok or "trajectory" not in node.outputs:
                self.report(
                    f"AIMD {key}: {node.process_label}<{node.pk}> gave no frames ({node.exit_message})"
                )
                continue
            sets[key], tags[key] = node.outputs.trajectory, tag
        if not sets:
            return self.exit_codes.ERROR_INITIAL_SAMPLING_FAILED.format(detail="no AIMD run gave frames")
        pool = alf.collect_labelled_frames(orm.Dict(tags), **sets)
        self._out_history("pool_00", pool)
        histogram = {"n_bins": settings.get("n_bins"), "bin_width": settings.get("bin_width")}
        parameters = {
            **self.ctx.params["selection"],
            "method": "flat_histogram",
            "n_select": int(settings.get("n_bins") or 0),
            "flat_histogram": histogram,
            "group_by": None,
            "quota": None,
            "sigma_window": None,
        }
        outputs = select_frames(pool=pool, parameters=orm.Dict(parameters))
        report = outputs["report"]
        self._record_selection(outputs)
        if "selected" not in outputs:
            return self.exit_codes.ERROR_INITIAL_SAMPLING_FAILED.format(
                detail="the flat histogram picked nothing"
            )
        selected = outputs["selected"]
        numbers = report.get_dict()["flat_histogram"]["all"]
        self.ctx.row.update(
            {
                "n_explored": len(pool),
                "n_selected": len(selected),
                "n_bins": numbers["n_bins"],
                "n_empty_bins": numbers["n_empty_bins"],
                "energy_range_eV_per_atom": [numbers["edges"][0], numbers["edges"][-1]],
            }
        )
        if settings["relabel"]:  # the loop's labeller labels the picks (labels and predictions stripped)
            self.ctx.to_label = alf.collect_frames(orm.Dict({}), selected=selected)
        else:  # the AIMD energies and forces are the labels
            kwargs = {"previous": self.ctx.training_set} if self.ctx.training_set is not None else {}
            self.ctx.training_set = alf.extend_training_set(orm.Int(0), labelled=selected, **kwargs)
            self._out_history("training_set_00", self.ctx.training_set)
            self.ctx.row.update({"n_labelled": len(selected), "n_failed": 0})
        self.report(
            f"flat histogram: {len(pool)} AIMD frames in {numbers['n_bins']} energy bins "
            f"({numbers['n_empty_bins']} empty); picked {len(selected)}"
            + ("" if settings["relabel"] else f"; training set 0 holds {len(self.ctx.training_set)} frames")
        )
        return None
