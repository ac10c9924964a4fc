"""Fuzzing the CLI (issue 13): no argument list gives a traceback; the parser exits 0 (help,
version) or 2 with one ``nnperf: error:`` line; ``main`` returns 0, 1 or 2. Arguments are drawn
from every subcommand's own flags plus hostile values. Seeded and bounded
(``derandomize=True``); commands that would run a model for long are only parsed, and their
early checks (``serve``'s settings) run on their own."""

from __future__ import annotations

import argparse
import contextlib
import io
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nnperf.cli import build_parser, main
from nnperf.cli.serve import build_server_settings, build_settings
from nnperf.errors import InvalidInputError

FUZZ = settings(
    derandomize=True,
    database=None,
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _flags() -> dict[str, list[str]]:
    """Each subcommand's option strings, read from the parser itself."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    out: dict[str, list[str]] = {}
    for name, p in sub.choices.items():
        out[name] = sorted(
            s
            for a in p._actions
            for s in a.option_strings
            if s not in ("-h", "--help")  # help prints pages; one example covers it
        )
    return out


FLAGS = _flags()
HOSTILE = [
    "", "-", "--", "0", "-1", "1", "2", "99999", "65536", "nan", "inf", "-inf", "1e309", "0.5",
    "5", "1_000", " 1", "zoo:identity", "zoo:nope", "/nonexistent/dir/out.json", "/",
    "/proc/self/nope", "a=b", "random:0", "random:2", "cpu", "cpu(0)*0", "cpu(x", "uint8", "all",
    "text", "json", "--version",
]  # fmt: skip
VALUES = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=12),
)


@st.composite
def argvs(draw: Any) -> list[str]:
    command = draw(st.sampled_from([*FLAGS, "nope", ""]))
    argv = [command] if command else []
    flags = FLAGS.get(command, ["--version"])
    if draw(st.booleans()):
        argv.append(
            draw(st.sampled_from(["zoo:identity", "zoo:mnist", "missing.onnx", "x=zoo:identity"]))
        )
    for _ in range(draw(st.integers(0, 4))):
        argv.append(draw(st.sampled_from(flags)) if flags else "--x")
        if draw(st.integers(0, 3)):
            argv.append(draw(VALUES))
    return argv


def _parse(argv: list[str]) -> tuple[argparse.Namespace | None, int | None, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            return build_parser().parse_args(argv), None, err.getvalue()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
            return None, code, err.getvalue()


@FUZZ
@given(argvs())
def test_parsing_never_raises_a_traceback(argv: list[str]) -> None:
    args, code, err = _parse(argv)
    assert "Traceback" not in err
    if args is None:
        assert code in (0, 2), (argv, code, err)
        if code == 2:
            lines = err.strip().splitlines()
            assert lines[-1].startswith("nnperf: error:"), (argv, err)


@FUZZ
@given(argvs().filter(lambda a: bool(a) and a[0] == "serve"))
def test_serve_early_checks_refuse_with_invalid_input(argv: list[str]) -> None:
    args, _, _ = _parse(argv)
    if args is None:
        return
    for check in (build_server_settings, build_settings):
        try:
            check(args)
        except InvalidInputError as exc:
            assert str(exc)


@FUZZ
@given(
    st.lists(VALUES, max_size=3).map(lambda rest: ["zoo", *rest]),
)
def test_cheap_commands_exit_0_1_or_2(argv: list[str]) -> None:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
    assert code in (0, 1, 2), (argv, code)
    assert "Traceback" not in err.getvalue()


@FUZZ
@given(st.lists(VALUES, max_size=2))
def test_inspect_exits_0_1_or_2(rest: list[str]) -> None:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(["inspect", "zoo:identity", *rest])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
    assert code in (0, 1, 2), (rest, code, err.getvalue())
    assert "Traceback" not in err.getvalue()
