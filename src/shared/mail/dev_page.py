"""``/dev/mail``: the outbox as a page, so ``make run`` needs no mail server.

Only when ``APP_ENV=development`` (404 otherwise, whatever ``MAIL_URL`` says). It is public on
purpose: the person who just registered is not signed in yet and needs the verification link.
Pages that show tokens send ``Referrer-Policy: no-referrer`` (SECURITY.md S37).
"""

from __future__ import annotations

from litestar import Request, get
from litestar.datastructures import State
from litestar.exceptions import NotFoundException
from litestar.response import Template

from shared.mail.outbox import read_outbox
from shared.mail.transport import outbox_folder
from shared.web.render import page

NO_REFERRER = {"Referrer-Policy": "no-referrer"}


@get("/dev/mail", opt={"public": True}, name="dev.mail", include_in_schema=False)
async def dev_mail(request: Request, state: State) -> Template:
    """The newest 50 messages of the outbox folder with their links (development only)."""
    settings = state.settings
    if settings.app_env != "development":
        raise NotFoundException()
    outbox = outbox_folder(settings)
    messages = read_outbox(outbox) if outbox is not None else []
    response = page(
        request,
        "mail/outbox.html",
        {"messages": messages, "outbox": outbox, "mail_url_set": outbox is None},
    )
    response.headers.update(NO_REFERRER)
    return response
