"""arXiv's category taxonomy (https://arxiv.org/category_taxonomy), for checking profiles.

A profile naming a category arXiv does not have (``csAI``, ``cs.cl``) would silently draw no
candidates and make the scheduler ask arXiv for a listing that fails, so names are checked here
at load time. Old archive names that arXiv still accepts as aliases (``cmp-lg``, ``math.IT``...)
are included; a close match is suggested for a near miss.
"""

from __future__ import annotations

import difflib

_SUBJECTS = {
    "cs": "AI AR CC CE CG CL CR CV CY DB DC DL DM DS ET FL GL GR GT HC IR IT LG LO MA MM MS NA NE "
          "NI OH OS PF PL RO SC SD SE SI SY",
    "econ": "EM GN TH",
    "eess": "AS IV SP SY",
    "math": "AC AG AP AT CA CO CT CV DG DS FA GM GN GR GT HO IT KT LO MG MP NA NT OA OC PR QA RA "
            "RT SG SP ST",
    "astro-ph": "CO EP GA HE IM SR",
    "cond-mat": "dis-nn mes-hall mtrl-sci other quant-gas soft stat-mech str-el supr-con",
    "nlin": "AO CD CG PS SI",
    "physics": "acc-ph ao-ph app-ph atm-clus atom-ph bio-ph chem-ph class-ph comp-ph data-an "
               "ed-ph flu-dyn gen-ph geo-ph hist-ph ins-det med-ph optics plasm-ph pop-ph "
               "soc-ph space-ph",
    "q-bio": "BM CB GN MN NC OT PE QM SC TO",
    "q-fin": "CP EC GN MF PM PR RM ST TR",
    "stat": "AP CO ME ML OT TH",
}
#: Archives without subject classes, and old archives arXiv still lists papers under.
_WHOLE = ("astro-ph", "cond-mat", "gr-qc", "hep-ex", "hep-lat", "hep-ph", "hep-th",
          "math-ph", "nucl-ex", "nucl-th", "quant-ph", "physics", "nlin", "cmp-lg",
          "adap-org", "alg-geom", "chao-dyn", "comp-gas", "dg-ga", "funct-an", "mtrl-th",
          "patt-sol", "q-alg", "solv-int", "supr-con", "chem-ph", "atom-ph", "acc-phys",
          "ao-sci", "bayes-an", "plasm-ph")

CATEGORIES: frozenset[str] = frozenset(
    [f"{archive}.{subject}" for archive, subjects in _SUBJECTS.items()
     for subject in subjects.split()] + list(_WHOLE)
)


def check_category(value: str) -> str:
    """`value` if arXiv has that category, else a ValueError suggesting the closest one."""
    if value in CATEGORIES:
        return value
    folded = {c.casefold().replace(".", ""): c for c in CATEGORIES}
    close = folded.get(value.casefold().replace(".", "")) or next(
        iter(difflib.get_close_matches(value, CATEGORIES, n=1, cutoff=0.75)), None
    )
    hint = f" (did you mean {close!r}?)" if close else " (see arxiv.org/category_taxonomy)"
    raise ValueError(f"{value!r} is not an arXiv category{hint}")
