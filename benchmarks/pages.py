"""The pages under benchmarks/results, from the templates in benchmarks/templates."""

from __future__ import annotations

from pathlib import Path

TEMPLATES = Path(__file__).parent / "templates"


def render(template: str, **context: object) -> str:
    """`template` filled with `context`. Numbers are written with `fmt` and a format spec,
    as an f-string writes them: `{{ seconds | fmt(".1f") }}`, `{{ share | fmt(".0%") }}`;
    long times with `duration`: `{{ seconds | duration }}`."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, Undefined

    def fmt(value: object, spec: str) -> str:
        if isinstance(value, Undefined):
            str(value)  # raises, naming what is missing (format() would say only TypeError)
        return format(value, spec)

    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        undefined=StrictUndefined,  # a misspelt name fails, never prints nothing
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters.update(fmt=fmt, duration=duration)
    return environment.get_template(template).render(**context)


def duration(seconds: float) -> str:
    """Seconds as a reader takes them in: 42 s, 17 min, 2.5 h."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
