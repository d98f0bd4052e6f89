"""What a subscriber can change: unsubscribe (RFC 8058 one-click) and feedback on a paper.

Both ask before they write. Mail security scanners (Outlook Safe Links, Proofpoint, Mimecast,
...) fetch every link of a message before the person sees it: a GET that voted would like *and*
dislike every paper, in the scanner's order. So the GET shows one button that POSTs (RFC 8058
asks the same of unsubscribe pages). Scanners do not submit forms; a person pays one click.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..profiles import add_feedback
from ..render import display_text
from .wsgi import Request, Response, Who, read_body

if TYPE_CHECKING:
    from ..app import DigestApp
    from .app import WebApp

log = logging.getLogger("digest.web")


def set_subscribed(app: DigestApp, profile: str, subscribed: bool) -> bool:
    """(Re)subscribe or unsubscribe a profile of the profiles folder (unknown names are
    errors); True when it changed anything. Runs skip unsubscribed profiles."""
    app.profiles([profile])
    with app.open_store() as store:
        return store.set_subscribed(profile, subscribed, now=app.clock())


def unsubscribe(web: WebApp, request: Request, who: Who) -> Response:
    action = quote(who.token, safe="")
    if request.method == "POST":
        # RFC 8058: the body is `List-Unsubscribe=One-Click` (form-encoded or multipart); the
        # page's own button sends the same. The signed URL is what authorizes, so the body is
        # read (bounded) but not required: an empty POST unsubscribes too.
        if read_body(request.environ) is None:
            return web.message(413, "Request too large", "That request was too large.")
        web.store.set_subscribed(who.name, False, now=web.app.clock())
        log.info("unsubscribed %s", who.name)
        return web.page("server_unsubscribe.html", profile=who.name, done=True,
                        unsubscribed=True, action=action)
    unsubscribed = who.name in web.store.unsubscribed()
    return web.page("server_unsubscribe.html", profile=who.name, done=False,
                    unsubscribed=unsubscribed, action=action)


def feedback(web: WebApp, request: Request, who: Who) -> Response:
    refs = request.query.get("paper", [])
    votes = request.query.get("v", [])
    if len(refs) != 1 or not refs[0].strip() or votes not in (["like"], ["dislike"]):
        return web.message(400, "Not a feedback link", "This link should name one paper and "
                           "say like or dislike. Use the link from your digest.")
    ref, vote = refs[0].strip(), votes[0]
    paper = web.store.resolve_refs([ref]).get(ref)
    if paper is None:
        return web.message(404, "Unknown paper", "This server does not know that paper.")
    like = vote == "like"
    title = display_text(paper.title) or paper.key
    token = quote(who.token, safe="")
    action = f"{token}?paper={quote(paper.key, safe='')}&v={vote}"
    # A vote token (from a feed entry, say) must not lead to the page: only an act token does.
    context: dict[str, Any] = {"profile": who.name, "title": title, "like": like, "action": action,
               "page_url": f"../p/{token}" if web.is_act(who.token) else None}
    if request.method != "POST":
        return web.page("server_feedback.html", done=False, changed=False, **context)
    if read_body(request.environ) is None:
        return web.message(413, "Request too large", "That request was too large.")
    # add_feedback rewrites a whole file: two votes at once must not lose one.
    with web.feedback_lock:
        changed = add_feedback(who.path, paper.key, like)
    log.info("%s %s %s", who.name, vote, paper.key)
    return web.page("server_feedback.html", done=True, changed=changed, **context)
