"""Reading form posts: first value per field, stripped of surrounding whitespace where asked."""

from __future__ import annotations

from litestar import Request

MAX_FIELD_CHARS = 10_000


async def read_form(
    request: Request, *, keep_whitespace: frozenset[str] = frozenset()
) -> dict[str, str]:
    """Return the posted urlencoded/multipart form as ``{field: text}``.

    Only the first value of each field is kept; values are cut at 10,000 characters (validators
    report lengths below that); fields named in ``keep_whitespace`` (passwords) are not stripped.
    File parts are ignored.
    """
    form = await request.form()
    data: dict[str, str] = {}
    for key in form:
        value = form.get(key)
        if not isinstance(value, str):
            continue
        value = value[: MAX_FIELD_CHARS + 1]
        data[key] = value if key in keep_whitespace else value.strip()
    return data
