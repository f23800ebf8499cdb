"""Fuzzing structure intake: malformed CIFs give StructureIntakeError and nothing else.

Generated from two valid CIFs (P1 methane; rock salt with its Fm-3m operations) by truncating them,
shuffling and dropping loop lines, putting NaN/inf/huge/garbage in place of numbers, inserting binary bytes,
repeating tags and inflating counts; plus pure random bytes. Hypothesis draws the same 1,000 cases on
every run (``derandomize``), so a failure reproduces.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from aiida_mofmlp.tools.intake import StructureIntakeError, load_cif  # noqa: E402

DATA = Path(__file__).parent / "data"
SEEDS = [(DATA / name).read_text() for name in ("methane_p1.cif", "rocksalt_fm-3m.cif")]
BAD_NUMBERS = [
    "nan",
    "NaN",
    "inf",
    "-inf",
    "1e308",
    "1e999",
    "-1e999",
    "?",
    ".",
    "-0",
    "1e-320",
    "abc",
    "0",
    "-10",
]


def _numeric_tokens(text: str) -> list[tuple[int, int]]:
    """Spans of tokens that parse as numbers (positions, cell, angles)."""
    spans, position = [], 0
    for token in text.replace("\n", " \n ").split(" "):
        start = text.find(token, position) if token else -1
        if token and start >= 0:
            position = start + len(token)
            try:
                float(token.split("(")[0])
            except ValueError:
                continue
            spans.append((start, start + len(token)))
    return spans


@st.composite
def malformed_cif(draw) -> bytes:
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 3))):
        lines = text.splitlines()
        kind = draw(
            st.sampled_from(
                ["truncate", "shuffle", "drop", "number", "binary", "repeat_tag", "inflate", "cut_row"]
            )
        )
        if kind == "truncate":
            text = text[: draw(st.integers(0, len(text)))]
        elif kind == "shuffle" and lines:
            order = draw(st.permutations(range(len(lines))))
            text = "\n".join(lines[i] for i in order)
        elif kind == "drop" and lines:
            index = draw(st.integers(0, len(lines) - 1))
            text = "\n".join(lines[:index] + lines[index + 1 :])
        elif kind == "number":
            spans = _numeric_tokens(text)
            if spans:
                start, end = draw(st.sampled_from(spans))
                text = text[:start] + draw(st.sampled_from(BAD_NUMBERS)) + text[end:]
        elif kind == "binary":
            at = draw(st.integers(0, len(text)))
            junk = draw(st.binary(min_size=1, max_size=64)).decode("latin-1")
            text = text[:at] + junk + text[at:]
        elif kind == "repeat_tag" and lines:
            tags = [line for line in lines if line.strip().startswith("_")] or lines
            tag = draw(st.sampled_from(tags))
            text = text + "\n" + tag + " 1\n"
        elif kind == "inflate":
            rows = [line for line in lines if line.strip() and line.strip()[0].isalpha() and "_" not in line]
            if rows:
                text = text + "\n" + "\n".join([draw(st.sampled_from(rows))] * draw(st.integers(20, 200)))
        elif kind == "cut_row":
            rows = [i for i, line in enumerate(lines) if len(line.split()) >= 4 and not line.startswith("_")]
            if rows:
                index = draw(st.sampled_from(rows))
                lines[index] = " ".join(lines[index].split()[:-1])
                text = "\n".join(lines)
    return text.encode("latin-1", errors="replace")


def _intake(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "fuzz.cif"
    path.write_bytes(content)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            load_cif(path)
        except StructureIntakeError as error:
            assert str(error) and error.kind  # a refusal that says what is wrong


_SETTINGS = dict(deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None)


@settings(max_examples=1000, **_SETTINGS)
@given(content=malformed_cif())
def test_malformed_cifs_give_only_intake_errors(aiida_profile, tmp_path_factory, content):
    _intake(tmp_path_factory.mktemp("fuzz", numbered=True), content)


@settings(max_examples=100, **_SETTINGS)
@given(content=st.binary(max_size=2048))
def test_random_bytes_give_only_intake_errors(aiida_profile, tmp_path_factory, content):
    _intake(tmp_path_factory.mktemp("bytes", numbered=True), content)
