"""The loop's strategies (``parameters.strategy``): presets, schedules, stop rules and their validation.

* ``uncertainty`` — Jin et al., Chem. Sci. 2026, DOI 10.1039/D5SC09058J: MD per loading and temperature,
  candidates in the sigma_max window [lo, hi], SOAP diversity; converged when every loading is trusted.
* ``temperature_ramp`` — Sharma & Sanvito, npj Comput. Mater. 2024, DOI 10.1038/s41524-024-01427-y: per
  iteration ``n_runs`` short NPT runs per starting frame from randomly displaced copies at a temperature that
  rises per iteration; CBAD accepts at most ``frames_per_run`` frames per run; stress labels; stops when an
  iteration at the top temperature adds no frame.
* ``aimd_flat_histogram`` — Castel et al., Digital Discovery 2024, DOI 10.1039/d3dd00236e: CP2K AIMD at
  several temperatures, one frame per energy bin (flat histogram) as training set 0, then the uncertainty
  loop with MLP MD at high temperature; no stress training.
"""

from __future__ import annotations

from aiida_mofmlp.common.protocols import deep_merge

STRATEGIES = ("uncertainty", "temperature_ramp", "aimd_flat_histogram")

#: the stop rule of each strategy, as the iteration table states it
STOP_RULES = {
    "uncertainty": "every loading has converged_fraction of its frames below lo, none above hi, no blow-up",
    "temperature_ramp": "an iteration at the top temperature (top_K) adds no frame",
    "aimd_flat_histogram": "every loading has converged_fraction of its frames below lo, none above hi, "
    "no blow-up (MLP MD at md_temperatures)",
}


def strategy_preset(protocol_data: dict, strategy: str, protocol: str) -> dict:
    """The overrides a strategy adds to ``protocol``: its ``all`` block and then its ``protocol`` block."""
    presets = (protocol_data.get("strategies") or {}).get(strategy) or {}
    return deep_merge(presets.get("all") or {}, presets.get(protocol) or {})


def ramp_temperature(settings: dict, iteration: int) -> float:
    """Temperature (K) of ``iteration`` (1, 2, ...): start_K + (iteration - 1) step_K, at most top_K."""
    start, step, top = float(settings["start_K"]), float(settings["step_K"]), float(settings["top_K"])
    return min(start + (int(iteration) - 1) * step, top)


def ramp_schedule(settings: dict, n_iterations: int) -> list[float]:
    """Temperatures of iterations 1 .. ``n_iterations``."""
    return [ramp_temperature(settings, k) for k in range(1, int(n_iterations) + 1)]


def ramp_decision(temperature: float, top: float, n_new: int) -> dict:
    """The temperature-ramp stop rule: converged when an iteration at ``top`` K adds no new frame."""
    at_top = float(temperature) >= float(top)
    return {"at_top_temperature": at_top, "n_new_frames": int(n_new), "converged": at_top and int(n_new) == 0}


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def derived_seed(base: int, stage: str, iteration: int = 0, index: int = 0) -> int:
    """The one formula of every random seed the loop hands out, from ``parameters.seed`` (``base``).

    ``stage``: ``md`` (run ``index`` of an iteration), ``training`` (first ensemble member), ``displace``
    (the ramp's displaced copies), ``cbad`` (its selection), ``validation``.
    """
    per_iteration, per_index, offset = SEED_STREAMS[stage]
    return int(base) + per_iteration * int(iteration) + per_index * int(index) + offset


#: stage -> (step per iteration, step per index, offset) of :func:`derived_seed`
SEED_STREAMS = {
    "md": (1000, 1, 1),
    "training": (100, 0, 0),
    "displace": (1000, 0, 0),
    "cbad": (1, 0, 0),
    "validation": (0, 0, 0),
}


class Strategy:
    """The decisions of a strategy, asked by the work chain (which never tests which strategy it runs).

    This base is the uncertainty loop (Jin et al.): MD per loading and temperature, candidates in the trust
    window chosen for diversity, converged when every loading is trusted.
    """

    name = "uncertainty"
    #: initial sampling by CP2K AIMD and a flat energy histogram instead of MD + SOAP
    samples_with_aimd = False
    #: the deviation summary decides convergence (else the strategy decides after its own selection)
    converges_by_trust = True

    @property
    def stop_rule(self) -> str:
        """The stop rule as the iteration table states it."""
        return STOP_RULES[self.name]

    def validate(self, params: dict) -> str | None:
        """This strategy's settings in the resolved loop ``params``: a message naming the key, or None."""
        return None

    def temperatures(self, params: dict) -> list[float]:
        """Temperatures (K) of the exploration MD."""
        return [float(t) for t in params["temperatures"]]

    def extra_candidate_tag(self, key: str) -> dict:
        """Info added to the frames of extra candidate set ``key`` when they join a pool."""
        return {}

    def explore(self, chain):
        """Submit this iteration's exploration (a step of ``chain``, the work chain)."""
        return chain.explore_md_grid()

    def select(self, chain):
        """Choose the frames to label (and, when not ``converges_by_trust``, decide convergence)."""
        return chain.select_in_trust_window()


class TemperatureRamp(Strategy):
    """Sharma & Sanvito: NPT from displaced copies at a rising temperature, CBAD picks, the ramp stops."""

    name = "temperature_ramp"
    converges_by_trust = False

    def validate(self, params: dict) -> str | None:
        return _validate_ramp(params["temperature_ramp"])

    def extra_candidate_tag(self, key: str) -> dict:
        return {"run": f"extra_{key}"}  # CBAD: at most frames_per_run of each extra set

    def explore(self, chain):
        return chain.explore_ramp()

    def select(self, chain):
        return chain.select_cbad()


class AimdFlatHistogram(Strategy):
    """Castel et al.: AIMD + flat histogram as training set 0, then the uncertainty loop at high T."""

    name = "aimd_flat_histogram"
    samples_with_aimd = True

    def validate(self, params: dict) -> str | None:
        return _validate_aimd(params["aimd_flat_histogram"])

    def temperatures(self, params: dict) -> list[float]:
        return [float(t) for t in params["aimd_flat_histogram"]["md_temperatures"]]


STRATEGY_TYPES = {kind.name: kind for kind in (Strategy, TemperatureRamp, AimdFlatHistogram)}


def strategy_of(params: dict) -> Strategy:
    """The strategy object of resolved loop ``params`` (``params['strategy']``)."""
    return STRATEGY_TYPES[params["strategy"]]()


def validate_strategy(params: dict) -> str | None:
    """The chosen strategy and its settings (``params``: resolved loop parameters); a message or None."""
    name = params.get("strategy")
    if name not in STRATEGY_TYPES:
        return f"parameters.strategy={name!r} is not a strategy; valid: {', '.join(STRATEGIES)}"
    return strategy_of(params).validate(params)


def _validate_ramp(ramp: dict) -> str | None:
    prefix = "parameters.temperature_ramp"
    for key in ("start_K", "step_K", "top_K", "pressure_bar"):
        if not _number(ramp.get(key)) or ramp[key] <= 0:
            hint = " (the ramp must rise: step_K > 0)" if key == "step_K" else ""
            return f"{prefix}.{key}={ramp.get(key)!r} must be a positive number{hint}"
    if ramp["top_K"] < ramp["start_K"]:
        return (
            f"{prefix}: top_K={ramp['top_K']} is below start_K={ramp['start_K']}; the ramp must rise "
            "from start_K to top_K"
        )
    for key in ("n_runs", "frames_per_run"):
        value = ramp.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            return f"{prefix}.{key}={value!r} must be a positive integer"
    steps = ramp.get("steps")
    if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool) or steps < 1):
        return f"{prefix}.steps={steps!r} must be a positive integer or null (the md stage's steps)"
    if not _number(ramp.get("displacement_A")) or ramp["displacement_A"] < 0:
        return f"{prefix}.displacement_A={ramp.get('displacement_A')!r} must be a number >= 0 (Angstrom)"
    if ramp.get("barostat") not in ("tri", "aniso", "iso"):
        return f"{prefix}.barostat={ramp.get('barostat')!r} is not valid; use tri, aniso or iso"
    from aiida_mofmlp.engines.selection.cbad import CbadSettings

    try:
        CbadSettings.from_dict(ramp.get("cbad"))
    except (TypeError, ValueError) as error:
        return f"{prefix}.{error} (bin widths in Angstrom and degrees)"
    return None


def _validate_aimd(aimd: dict) -> str | None:
    prefix = "parameters.aimd_flat_histogram"
    for key in ("temperatures", "md_temperatures"):
        values = aimd.get(key)
        if not isinstance(values, list) or not values or any(not _number(t) or t <= 0 for t in values):
            return f"{prefix}.{key}={values!r} must be a non-empty list of positive temperatures (K)"
    steps = aimd.get("aimd_steps")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        return f"{prefix}.aimd_steps={steps!r} must be a positive integer (AIMD steps per temperature)"
    for key in ("timestep_fs", "thermostat_timecon_fs"):
        if not _number(aimd.get(key)) or aimd[key] <= 0:
            return f"{prefix}.{key}={aimd.get(key)!r} must be a positive number (fs)"
    discard = aimd.get("discard_steps")
    if discard is not None and (not isinstance(discard, int) or discard < 0 or discard >= steps):
        return f"{prefix}.discard_steps={discard!r} must be null or an integer in [0, aimd_steps={steps})"
    n_bins, width = aimd.get("n_bins"), aimd.get("bin_width")
    if (n_bins is None) == (width is None):
        return (
            f"{prefix}: give exactly one of n_bins or bin_width (got n_bins={n_bins!r}, bin_width={width!r})"
        )
    if n_bins is not None and (not isinstance(n_bins, int) or isinstance(n_bins, bool) or n_bins < 1):
        return f"{prefix}.n_bins={n_bins!r} must be a positive integer (energy bins, one frame each)"
    if width is not None and (not _number(width) or width <= 0):
        return f"{prefix}.bin_width={width!r} must be a positive number (eV/atom)"
    if not isinstance(aimd.get("relabel"), bool):
        return f"{prefix}.relabel={aimd.get('relabel')!r} must be true or false"
    return None
