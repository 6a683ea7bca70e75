"""Normalisation of the raw facts that identify an end-customer account.

Partners, reps and CRMs describe the same customer in many spellings: a website with a
path, an e-mail address, "ACME Corp.", "Acme Corporation", "Acmé GmbH & Co. KG". This
module turns each fact into one canonical, comparable form -- the registrable web domain,
the normalised legal name, the ISO country code -- and scores how alike two names are.

Everything here is pure: no I/O (the public suffix list is the snapshot bundled with
tldextract, never fetched), no clock, no randomness. Results are memoised because the same
few thousand domains and names recur constantly in a registration stream.
"""

from __future__ import annotations

import re
import unicodedata
from email.utils import parseaddr
from functools import lru_cache
from typing import Final

import idna
import pycountry
import tldextract
from rapidfuzz import fuzz

__all__ = [
    "is_freemail_domain",
    "is_platform_page",
    "name_forms",
    "name_similarity",
    "normalize_country",
    "normalize_name",
    "registrable_domain",
    "sort_name_tokens",
]

# --------------------------------------------------------------------------------------
# Domains
# --------------------------------------------------------------------------------------


def _build_extractor() -> tldextract.TLDExtract:
    """An extractor that can only ever use the suffix list bundled in the wheel.

    ``suffix_list_urls=()`` leaves nothing to fetch, so tldextract falls straight back to
    its packaged snapshot; ``cache_dir=None`` keeps it from touching the disk. Private PSL
    entries (github.io, blogspot.com, herokuapp.com, ...) are honoured because every
    customer under such a suffix is a different owner: ``a.github.io`` and ``b.github.io``
    must not collapse into one account.
    """
    return tldextract.TLDExtract(
        suffix_list_urls=(),
        cache_dir=None,
        fallback_to_snapshot=True,
        include_psl_private_domains=True,
    )


_EXTRACT: Final = _build_extractor()

# Separators browsers treat as a dot in host names (ideographic / full-width full stops).
_DOT_VARIANTS: Final = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})


@lru_cache(maxsize=65_536)
def registrable_domain(value: str) -> str | None:
    """The lower-case registrable domain (eTLD+1, A-label form) behind a domain, URL or e-mail.

    >>> registrable_domain("https://www.shop.Acme.co.uk:8443/path?q=1")
    'acme.co.uk'
    >>> registrable_domain("Jane Doe <jane@sales.acme.com>")
    'acme.com'

    Returns None for anything that is not a host under a public suffix: garbage, IP
    addresses, single-label hosts such as ``localhost``, bare public suffixes (``co.uk``).
    Internationalised names come back as punycode so ``bücher.de`` and
    ``xn--bcher-kva.de`` are the same domain. Free-mail providers are NOT filtered here --
    see :func:`is_freemail_domain`; whether gmail.com may identify an account is the
    caller's decision.
    """
    host = _host_of(value)
    if host is None:
        return None
    if ":" in host or host.replace(".", "").isdigit():
        # IPv6 / IPv4 literals (and other all-numeric hosts: no public suffix is numeric).
        return None
    ascii_host = _ascii_host(host)
    if ascii_host is None:
        return None
    parts = _EXTRACT(ascii_host)
    if not parts.domain or not parts.suffix:
        return None
    return f"{parts.domain}.{parts.suffix}"


# A plain letters-digits-hyphens label, not starting or ending with a hyphen.
_LDH_LABEL: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def _ascii_host(host: str) -> str | None:
    """The validated, lower-case A-label form of a host name, or None if it is not one."""
    if host.isascii() and len(host) <= 253:
        lowered = host.lower()
        labels = lowered.split(".")
        # Fast path for the common case (idna.encode costs ~25 us): plain LDH labels with
        # no "--" in positions 3-4, which is where A-labels ("xn--") need real checking.
        if all(_LDH_LABEL.fullmatch(label) and label[2:4] != "--" for label in labels):
            return lowered
    try:
        # UTS #46 mapping lower-cases, folds full-width forms and validates every label
        # (hyphens, lengths, bad A-labels, underscores), so whatever survives is a
        # syntactically valid host name.
        return idna.encode(host, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError):
        return None


_WHITESPACE: Final = re.compile(r"\s")
_AUTHORITY_END: Final = re.compile(r"[/?#\\]")


def _host_of(value: str) -> str | None:
    """The host part of a bare domain, URL or e-mail address, or None if there is none."""
    text = value.strip().translate(_DOT_VARIANTS)
    if not text or ("@" not in text and _WHITESPACE.search(text)):
        return None
    if "://" not in text and "@" in text:
        # An e-mail address, possibly "Name <addr>" or "mailto:addr".
        _, address = parseaddr(text.removeprefix("mailto:"))
        if "@" not in address:
            return None
        text = address.rsplit("@", 1)[1]
    # URL anatomy by hand rather than urllib.parse: this package stays free of modules the
    # architecture test associates with I/O, and only the host is wanted anyway.
    _, sep, rest = text.partition("://")
    netloc = rest if sep else text.removeprefix("//")
    netloc = _AUTHORITY_END.split(netloc, 1)[0].rsplit("@", 1)[-1]  # drop path, userinfo
    if netloc.startswith("["):  # bracketed IPv6 literal; never a registrable domain
        return None
    host = netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc  # drop the port
    host = host.rstrip(".")
    if not host or _WHITESPACE.search(host):
        return None
    return host


# Consumer mailbox providers: an address at one of these says nothing about which company
# the person works for. Registrable domains only (what registrable_domain() returns).
_FREEMAIL_DOMAINS: Final = frozenset(
    {
        # global
        "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "msn.com",
        "yahoo.com", "ymail.com", "rocketmail.com", "aol.com", "icloud.com", "me.com",
        "mac.com", "proton.me", "protonmail.com", "protonmail.ch", "pm.me", "tutanota.com",
        "tutanota.de", "tuta.io", "tuta.com", "zohomail.com", "fastmail.com",
        "fastmail.fm", "hey.com", "mail.com", "email.com", "gmx.com", "gmx.net", "yandex.com",
        "yandex.ru", "hushmail.com", "inbox.com", "mailbox.org", "posteo.de", "posteo.net",
        # regional variants of the big providers
        "hotmail.co.uk", "hotmail.de", "hotmail.fr", "hotmail.it", "hotmail.es",
        "live.co.uk", "live.de", "live.fr", "outlook.de", "outlook.fr",
        "yahoo.co.uk", "yahoo.de", "yahoo.fr", "yahoo.it", "yahoo.es", "yahoo.co.jp",
        "yahoo.com.au", "yahoo.com.br", "yahoo.co.in", "yahoo.ca",
        # national providers
        "gmx.de", "gmx.at", "gmx.ch", "web.de", "t-online.de", "freenet.de", "arcor.de",
        "orange.fr", "wanadoo.fr", "free.fr", "laposte.net", "sfr.fr", "libero.it",
        "virgilio.it", "seznam.cz", "wp.pl", "o2.pl", "onet.pl", "interia.pl", "mail.ru",
        "bk.ru", "list.ru", "inbox.ru", "rambler.ru", "ukr.net", "qq.com", "163.com",
        "126.com", "sina.com", "naver.com", "daum.net", "hanmail.net", "rediffmail.com",
        "uol.com.br", "bol.com.br", "terra.com.br", "btinternet.com", "sky.com",
        "virginmedia.com", "comcast.net", "verizon.net", "att.net", "sbcglobal.net",
        "bigpond.com", "optusnet.com.au", "shaw.ca", "telus.net", "bluewin.ch",
        # regional providers and ISP mailboxes (Faker's lists, rival review session 23:
        # two Italian companies reached at tiscali.it were filed as one customer). A few are
        # also a telco's own site (vodafone.it, telia.com): that customer is then known by
        # its name and CRM id, which is better than merging every subscriber's employer.
        "amail.az", "box.az", "abv.bg", "dir.bg", "mail.bg", "bih.net.ba", "tel.net.ba",
        "centrum.cz", "chello.cz", "email.cz", "post.cz", "volny.cz", "chello.at", "kabsi.at",
        "forthnet.gr", "hol.gr", "otenet.gr", "inspire.net.nz", "xtra.co.nz", "chmail.ir",
        "mailfa.com", "kolumbus.fi", "luukku.com", "suomi24.fi", "surffi.net", "hispeed.ch",
        "romandie.com", "sunrise.ch", "vtxnet.ch", "bouygtel.fr", "club-internet.fr",
        "dbmail.com", "ifrance.com", "noos.fr", "tele2.fr", "tiscali.fr", "voila.fr",
        "globalnet.hr", "inet.hr", "net.hr", "ht.hr", "vip.hr", "xnet.hr", "zagreb.hr",
        "t-com.hr", "citromail.hu", "freemail.hu", "indamail.hu", "mailbox.hu", "alice.it",
        "fastwebnet.it", "poste.it", "tele2.it", "tim.it", "tin.it", "tiscali.it",
        "vodafone.it", "dreamwiz.com", "nate.com", "alfa.mk", "mail.mk", "mtel.mk",
        "neotel.mk", "on.net.mk", "t.mk", "telekom.mk", "clix.pt", "sapo.pt", "141.ro",
        "acasa.ro", "email.ro", "kappa.ro", "post.ro", "zzup.ro", "atlas.sk", "azet.sk",
        "centrum.sk", "chello.sk", "inmail.sk", "pobox.sk", "post.sk", "szm.sk", "zoznam.sk",
        "email.si", "siol.net", "volja.net", "spray.se", "swipnet.se", "telia.com",
        "kon.in.th", "yaani.com", "email.ua", "i.ua", "meta.ua",
        # more mailbox-only providers and ISP mailboxes (rival review session 24: two
        # companies reached at cox.net or ziggo.nl were filed as one customer)
        "zohomail.eu", "zohomail.in", "ya.ru", "rediff.com", "foxmail.com", "sina.cn",
        "139.com", "aliyun.com", "yeah.net", "kakao.com", "duck.com", "tutamail.com",
        "aim.com", "usa.com", "post.com", "consultant.com", "gmx.us", "email.it",
        "optonline.net", "cox.net", "charter.net", "earthlink.net", "juno.com",
        "bellsouth.net", "windstream.net", "mindspring.com", "netzero.net",
        "btopenworld.com", "talktalk.net", "ntlworld.com", "blueyonder.co.uk",
        "tiscali.co.uk", "virgin.net", "sympatico.ca", "videotron.ca", "bigpond.net.au",
        "telenet.be", "skynet.be", "hetnet.nl", "ziggo.nl", "kpnmail.nl", "planet.nl",
        "home.nl", "xs4all.nl", "online.no", "bredband.net", "eircom.net", "netcabo.pt",
        "terra.es", "telefonica.net", "prodigy.net.mx", "docomo.ne.jp", "ezweb.ne.jp",
        "softbank.ne.jp", "softbank.jp", "inbox.lv", "inbox.lt", "walla.co.il",
        "bezeqint.net",
    }
)  # fmt: skip

# The global mailbox brands run one registrable domain per country (hotmail.gr, yahoo.hr,
# outlook.com.br, aol.de, live.se, googlemail.gr): a brand is free mail under any suffix.
_FREEMAIL_BRANDS: Final = frozenset({
    "gmail", "googlemail", "hotmail", "outlook", "yahoo", "ymail", "rocketmail", "aol",
    "live", "msn", "icloud", "gmx", "yandex", "protonmail",
})  # fmt: skip


# Platforms whose pages name a business in their path (facebook.com/acmebakery,
# linkedin.com/company/acme, sites.google.com/view/acme): a page there is the business's
# website in many CRMs, and the platform's domain says nothing about which business. The
# bare domain is the platform itself (Meta at facebook.com), so only a URL with a path counts.
_PAGE_PLATFORMS: Final = frozenset({
    "facebook.com", "fb.com", "instagram.com", "linkedin.com", "twitter.com", "x.com",
    "youtube.com", "tiktok.com", "pinterest.com", "yelp.com", "tripadvisor.com",
    "google.com", "github.com", "gitlab.com", "medium.com", "linktr.ee", "wa.me", "t.me",
    # rival review session 24: short links to such pages, and more directories and
    # networks whose path names a business
    "fb.me", "instagr.am", "lnkd.in", "youtu.be", "goo.gl", "g.page", "bit.ly",
    "threads.net", "telegram.me", "whatsapp.com", "vk.com", "ok.ru", "weibo.com",
    "line.me", "reddit.com", "crunchbase.com", "zoominfo.com", "bbb.org",
    "trustpilot.com", "glassdoor.com", "foursquare.com", "houzz.com", "notion.so",
    "bitbucket.org", "about.me", "upwork.com", "fiverr.com",
})  # fmt: skip
# The global platforms run one registrable domain per country (facebook.de, yelp.co.uk,
# google.com.au, linkedin.cn, amazon.de/shops/acme): a page there is a page on the
# platform under any suffix (rival review session 24: two companies with yelp.co.uk pages
# were filed as one customer).
_PAGE_BRANDS: Final = frozenset({
    "facebook", "instagram", "linkedin", "twitter", "youtube", "tiktok", "pinterest",
    "yelp", "tripadvisor", "google", "xing", "amazon", "ebay", "etsy",
})  # fmt: skip
# Hosting services that give each business a subdomain of a name not on the public suffix
# list (acme.business.site): any address there is a tenant's.
_HOSTED_SITES: Final = frozenset({"business.site"})
# Hosting services whose own site is the bare domain (and www) and whose tenants each get
# a subdomain (acme.wordpress.com, acme.weebly.com): a subdomain is a tenant's site.
_TENANT_SUBDOMAINS: Final = frozenset({
    "wordpress.com", "weebly.com", "godaddysites.com", "tumblr.com", "substack.com",
    "medium.com", "jimdosite.com", "mystrikingly.com", "site123.me", "webnode.com",
    "squarespace.com", "shopify.com", "bigcartel.com", "wixsite.com", "ueniweb.com",
    # rival review session 26: more site builders and blog hosts whose tenants' subdomains
    # the public suffix list does not know (every business there was one `dom:` customer)
    "odoo.com", "jimdo.com", "jimdofree.com", "hs-sites.com", "ghost.io",
    "strikingly.com", "typepad.com", "tilda.ws", "webnode.page", "e-monsite.com",
    "over-blog.com", "mailchimpsites.com", "home.blog", "canalblog.com", "tistory.com",
    "neocities.org", "livejournal.com", "beehiiv.com", "blogger.com", "webs.com",
    "tripod.com", "angelfire.com",
})  # fmt: skip
# Hosts that run the tenant scheme under many national suffixes (acme.blogspot.de,
# acme.blogspot.co.uk: the public suffix list keeps only blogspot.com's): a host brand is a
# tenant host under any suffix.
_TENANT_BRANDS: Final = frozenset({"blogspot"})


def is_platform_page(value: str) -> bool:
    """Whether ``value`` (a URL) is a business's page on a platform (its path or subdomain
    names the business, the registrable domain does not): ``facebook.com/acme`` (also
    ``facebook.de/acme``: a platform brand under any suffix), ``acme.business.site``,
    ``acme.wordpress.com``; not the platform's bare domain, not an address there."""
    registrable = registrable_domain(value)
    if registrable is None:
        return False
    if registrable in _HOSTED_SITES:
        return True
    text = value.strip()
    if "@" in text and "://" not in text:
        return False  # an address at the platform (its staff)
    if registrable in _TENANT_SUBDOMAINS or registrable.partition(".")[0] in _TENANT_BRANDS:
        host = _host_of(text)
        ascii_host = _ascii_host(host) if host else None
        if ascii_host not in (None, registrable, f"www.{registrable}"):
            return True
    if registrable not in _PAGE_PLATFORMS \
            and registrable.partition(".")[0] not in _PAGE_BRANDS:
        return False
    _, sep, rest = text.partition("://")
    rest = rest if sep else text.removeprefix("//")
    parts = _AUTHORITY_END.split(rest, 1)
    return len(parts) == 2 and bool(parts[1].strip("/?#\\ "))


def is_freemail_domain(domain: str) -> bool:
    """Whether ``domain`` (or the registrable domain of a URL / e-mail) is a free-mail provider:
    a listed one, or a global mailbox brand under any public suffix."""
    registrable = registrable_domain(domain) or domain.strip().lower()
    return registrable in _FREEMAIL_DOMAINS \
        or registrable.partition(".")[0] in _FREEMAIL_BRANDS


# --------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------

# Letters that have no Unicode decomposition but do have an obvious ASCII reading; without
# this "Øresund" and "Oresund" (or "Łódź" and "Lodz") would never meet.
_FOLD_LETTERS: Final = {
    "ø": "o", "ł": "l", "đ": "d", "ð": "d", "ħ": "h", "ŧ": "t", "\u0131": "i", "ŀ": "l",
    "æ": "ae", "œ": "oe", "þ": "th", "ŋ": "n", "ĸ": "k",
    # Look-alikes (rival review session 26): Cyrillic and Greek letters drawn like a Latin
    # one (after case folding, so Cyrillic U+0410 and U+0430 and Greek U+0391 all read
    # "a"), and Latin small capitals. Without this, "Acme Corp" with a Cyrillic A scored
    # 0.75 against "Acme Corp" and a Cyrillic o in "Corp" kept the legal form on: a rival's
    # spelling of a customer another partner holds was a new customer. Each script's
    # letters map to distinct Latin letters, so two names in one script never fold
    # together (tests/unit/accounts/test_normalize.py).
    "\u0430": "a", "\u0432": "b", "\u0435": "e", "\u0456": "i", "\u0458": "j",
    "\u043a": "k", "\u043c": "m", "\u043d": "h", "\u043e": "o", "\u0440": "p",
    "\u0441": "c", "\u0442": "t", "\u0443": "y", "\u0445": "x", "\u0455": "s",
    "\u0501": "d", "\u051b": "q", "\u051d": "w", "\u04cf": "l",
    "\u03b1": "a", "\u03b2": "b", "\u03b5": "e", "\u03b7": "h", "\u03b9": "i",
    "\u03ba": "k", "\u03bc": "m", "\u03bd": "v", "\u03bf": "o", "\u03c1": "p",
    "\u03c4": "t", "\u03c5": "u", "\u03c7": "x", "\u03b6": "z",
    "\u1d00": "a", "\u0299": "b", "\u1d04": "c", "\u1d05": "d", "\u1d07": "e",
    "\u029c": "h", "\u026a": "i", "\u1d0a": "j", "\u1d0b": "k", "\u029f": "l",
    "\u1d0d": "m", "\u0274": "n", "\u1d0f": "o", "\u1d18": "p", "\u0280": "r",
    "\ua731": "s", "\u1d1b": "t", "\u1d1c": "u", "\u1d20": "v", "\u1d21": "w",
    "\u028f": "y", "\u1d22": "z",
}  # fmt: skip

LOOK_ALIKES: Final = str.maketrans({
    ch: latin for ch, latin in _FOLD_LETTERS.items()
    if unicodedata.name(ch, "").startswith(("CYRILLIC", "GREEK", "LATIN LETTER SMALL CAPITAL"))})
"""The look-alikes of `_FOLD_LETTERS` alone (lower case), for `str.translate`: product
names fold them inside a word that mixes them with Latin letters
(`shared.inputs.canonical_product`)."""

# Signs that NFKD spells with letters ("™" is "TM", "℠" is "SM") but that are no part of a
# name: read as a space before decomposing, so "Acme Corp™" is "acme", not "acme corptm"
# (rival review session 26: the glued "tm" kept the legal form on and the name missed).
# Session 29 rival review: the other spellings of a mark NFKD spells as letters -- the
# circled R and C ("Ⓡ", "🄬", "Ⓒ", "🄫"; "®" and "©" are symbols, read as a space anyway)
# and the superscript "ᵀᴹ", "ˢᴹ", "ᴿ" -- were glued to the name ("acme corpr").
_SIGNS: Final = str.maketrans(dict.fromkeys(
    "\u2122\u2120\u24c7\u24e1\u24b8\u24d2\U0001f12b\U0001f12c\u1d40\u1d39\u02e2\u1d3f",
    " "))
# A mark spelled in ASCII letters and bracketed, as a CRM that keeps only ASCII stores it:
# "Acme Corp (TM)", "Acme(R)", "[SM]", "(c)" (session 29 rival review: "acme corp tm",
# another customer than "acme"). Read as a space wherever it stands; "(MC)" / "(MD)"
# stay (a Canadian mark, or a state: Maryland).
_MARKS: Final = re.compile(r"[(\[]\s*(?:tm|sm|r|c)\s*[)\]]", re.IGNORECASE)


def _drop_marks(name: str) -> str:
    """`name` with its marks read as spaces: the signs (`_SIGNS`) and the bracketed ASCII
    marks (`_MARKS`, full-width brackets too: NFKC first)."""
    if not name.isascii():
        name = unicodedata.normalize("NFKC", name.translate(_SIGNS))
    return _MARKS.sub(" ", name) if "(" in name or "[" in name else name

# Characters removed without leaving a gap, so that "L.L.C." reads "llc", "S.A." reads
# "sa" and "McDonald's" reads "mcdonalds". Every other punctuation mark or symbol becomes a
# space ("Hewlett-Packard" -> "hewlett packard").
_JOINERS: Final = frozenset(".'\u2018\u2019\u02bc`\u00b4")

# A slash between single letters is an abbreviation ("A/S", "c/o"), not a separator.
_LETTER_SLASH_LETTER: Final = re.compile(r"(?<![^\W\d_])([^\W\d_])/(?=[^\W\d_](?![^\W\d_]))")

# Abbreviations expanded so that "Globex Intl" and "Globex International" are one name.
# Kept deliberately short: only words that are unambiguous in company names.
_ABBREVIATIONS: Final = {
    "intl": "international", "mfg": "manufacturing", "bros": "brothers",
    "natl": "national", "assn": "association", "svcs": "services", "mgmt": "management",
}  # fmt: skip

_LEGAL_FORMS: Final = """
inc|incorporated|corp|corporation|co|cos|company|companies|and co|and company
llc|lc|pllc|ltd|limited|plc|llp|lllp|lp|pc|ulc|co ltd|co limited|corp ltd|co inc
pty|pty ltd|pty limited|proprietary limited|pte|pte ltd|pvt|pvt ltd|private limited
sdn bhd|bhd|berhad|tbk
gmbh|mbh|ggmbh|gesmbh|gesellschaft mit beschrankter haftung|ag|aktiengesellschaft|kg|kgaa
ohg|gbr|ug|ug haftungsbeschrankt|ev|eg|se|gmbh and co kg|gmbh and co kgaa|gmbh and co ohg
sa|sas|sasu|sarl|sa rl|eurl|sca|scs|snc|sci|scop|selarl|and cie|et cie|societe anonyme
societe par actions simplifiee|societe a responsabilite limitee
srl|srls|spa|sapa|scarl|scrl|societa per azioni|societa a responsabilita limitata
sl|slu|sll|sociedad anonima|sociedad limitada|and cia|y cia|cia|ltda|lda|eireli|sgps
sa de cv|de cv|s de rl|s de rl de cv|sapi de cv|sab de cv
bv|nv|vof|cv|bvba|cvba|sprl|asbl|vzw|besloten vennootschap|naamloze vennootschap
oy|oyj|ab|ab publ|as|asa|aps|is|amba|hf|ehf
sp z oo|spzoo|sp j|sp k|spolka z ograniczona odpowiedzialnoscia|sro|spol s ro|vos
kft|zrt|nyrt|bt|doo|dd|ood|eood|ou|uab|sia|ae|epe|ike|anonim sirketi
kk|kabushiki kaisha|kabushikigaisha|gk|godo kaisha|yk|yugen kaisha
"""

# Japanese, Chinese and Korean legal forms are written without a space, before or after
# the name. Korean ones as names reach them: NFKD, Hangul syllables split into jamo (rival
# review session 26: "삼성전자 주식회사" and "㈜삼성전자" were other names than "삼성전자").
_CJK_LEGAL_FORMS: Final = tuple(unicodedata.normalize("NFKD", form) for form in (
    "股份有限公司", "有限公司", "株式会社", "有限会社", "合同会社",
    "주식회사", "유한책임회사", "유한회사", "합자회사", "합명회사"))
# The same forms standing apart ("株式会社 アクメ"), and their one-character abbreviations,
# which NFKD leaves alone once "㈱" / "(株)" / "㈜" / "(주)" has lost its brackets (rival
# review session 26: "㈱アクメ" was "株 アクメ", another name than "株式会社アクメ").
_CJK_SEPARATE_FORMS: Final = frozenset({*_CJK_LEGAL_FORMS, "株", "有",
                                        unicodedata.normalize("NFKD", "주")})

# Legal forms as token tuples; the stripper tries the longest first so that
# "S.A. de C.V." goes as one unit rather than leaving a stray "de".
_LEGAL_SUFFIXES: Final = frozenset(
    tuple(form.split()) for line in _LEGAL_FORMS.strip().splitlines() for form in line.split("|")
) | frozenset((form,) for form in _CJK_SEPARATE_FORMS)
_MAX_SUFFIX_TOKENS: Final = max(len(s) for s in _LEGAL_SUFFIXES)


def _fold_char(ch: str) -> str:
    if ch in _JOINERS:
        return ""
    if ch == "&":
        return " and "
    folded = _FOLD_LETTERS.get(ch)
    if folded is not None:
        return folded
    category = unicodedata.category(ch)
    if category in ("Mn", "Me"):  # accents, other non-spacing and enclosing marks
        return ""
    if category == "Nd" and not ch.isascii():
        # A decimal digit of any script reads as its ASCII digit ("AB ٢" is "ab 2"; rival
        # review session 26: Arabic-Indic or Devanagari digits made another name).
        return str(unicodedata.digit(ch))
    if category[0] in "LN" or category == "Mc":
        return ch
    return " "  # punctuation, symbols, separators, control characters


class _FoldTable(dict[int, str]):
    """`_fold_char` by code point, for `str.translate`: filled on first use of a character
    (translate looks each one up, `__missing__` answers the unseen). The size cap only
    guards against adversarial input cycling through the whole code space."""

    def __missing__(self, code: int) -> str:
        folded = _fold_char(chr(code))
        if len(self) < 20_000:
            self[code] = folded
        return folded


_FOLD_TABLE: Final = _FoldTable()


def _fold_text(text: str) -> str:
    # NFKD first so decomposed accents can be dropped and compatibility forms (full-width
    # letters, ligatures) become plain letters; casefold afterwards may itself produce
    # decomposable characters, hence the second NFKD. ASCII text is its own NFKD and
    # casefolds to lower(): the common case skips both (the same result, a third of the
    # cost of a name's normalisation).
    if text.isascii():
        text = text.lower()
    else:
        text = unicodedata.normalize("NFKD", text.translate(_SIGNS))
        text = unicodedata.normalize("NFKD", text.casefold())
    if "/" in text:
        text = _LETTER_SLASH_LETTER.sub(r"\1", text)
    return text.translate(_FOLD_TABLE)


def _strip_cjk_forms(tokens: list[str]) -> list[str]:
    # Standing apart at the start (at the end they are legal suffixes like any other).
    while len(tokens) > 1 and tokens[0] in _CJK_SEPARATE_FORMS:
        tokens = tokens[1:]
    first, last = tokens[0], tokens[-1]
    for form in _CJK_LEGAL_FORMS:
        if last.endswith(form) and len(last) > len(form):
            tokens = [*tokens[:-1], last[: -len(form)]]
            break
        if first.startswith(form) and len(first) > len(form):
            tokens = [first[len(form) :], *tokens[1:]]
            break
    return tokens


def _strip_legal_suffixes(tokens: list[str]) -> list[str]:
    """Drop trailing legal forms, longest first, repeatedly -- but never the last word:
    a name made only of legal-form words keeps its first one ("AB Inc" -> "ab", the same
    as "AB"), so such a name still compares equal to its variants with another suffix."""
    end = len(tokens)
    stripped = True
    while stripped:
        stripped = False
        for width in range(min(_MAX_SUFFIX_TOKENS, end - 1), 0, -1):
            if tuple(tokens[end - width : end]) in _LEGAL_SUFFIXES:
                end -= width
                stripped = True
                break
    return tokens[:end]


def _join_spelled_out(tokens: list[str]) -> list[str]:
    """Runs of two or more single letters read as one word: "I B M" is "ibm", as "I.B.M."
    and "IBM" are (rival review, session 27: "A C M E Corp" was another name than "Acme
    Corp", approved beside a name-only holder; a spaced "S A" or "A G" is then the legal
    form it spells)."""
    if not any(len(token) == 1 for token in tokens):
        return tokens
    out: list[str] = []
    run: list[str] = []
    for token in (*tokens, ""):
        if len(token) == 1 and token.isalpha():
            run.append(token)
            continue
        if len(run) > 1:
            out.append("".join(run))
        else:
            out.extend(run)
        run = []
        if token:
            out.append(token)
    return out


# --- Place qualifiers and trade names (session 28) --------------------------------------
# A company's division or office is often written with its place: "Acme Corp (USA)",
# "Acme Corp (UK) Ltd", "Acme Corporation - EMEA". Where that place is (or contains) the
# country the account is registered in, it names no other customer: dropped. A place that
# does not contain the registration's country stays part of the name (the UK entity
# registered in the US is not the US customer by name alone).


def _codes(text: str) -> list[str]:
    return text.split()


# The regions a qualifier may name, by ISO code (the usual sales regions).
_AMER: Final = frozenset(_codes("""
US CA MX GT BZ SV HN NI CR PA CU DO HT JM BS BB TT AG DM GD KN LC VC PR VI VG AI MS KY TC
BM AW CW SX BQ GP MQ BL MF PM CO VE EC PE BO CL AR UY PY BR GY SR GF FK UM"""))
_APAC: Final = frozenset(_codes("""
AU NZ PG FJ SB VU NC PF WS TO TV KI NR MH FM PW GU MP AS CK NU TK WF PN NF CX CC HM CN JP
KR KP TW HK MO MN SG MY ID TH VN PH MM KH LA BN TL IN PK BD LK NP BT MV AF IO"""))
_EUROPE: Final = frozenset(_codes("""
AD AL AT AX BA BE BG BY CH CY CZ DE DK EE ES FI FO FR GB GG GI GR HR HU IE IM IS IT JE LI
LT LU LV MC MD ME MK MT NL NO PL PT RO RS RU SE SI SJ SK SM UA VA XK"""))
_NORDICS: Final = frozenset({"DK", "FI", "IS", "NO", "SE", "FO", "AX"})
# Europe, the Middle East and Africa: every other country (Central Asia included).
_EMEA: Final = frozenset(str(c.alpha_2) for c in pycountry.countries) - _AMER - _APAC
_LATAM: Final = _AMER - {"US", "CA", "BM", "PM", "UM"}

# A region (folded spelling) -> the countries it contains.
_REGIONS: Final[dict[str, frozenset[str]]] = {
    "emea": _EMEA, "apac": _APAC, "apj": _APAC, "apjc": _APAC, "asia pacific": _APAC,
    "amer": _AMER, "americas": _AMER, "latam": _LATAM,
    "latin america": _LATAM, "na": frozenset({"US", "CA"}),
    "north america": frozenset({"US", "CA"}), "dach": frozenset({"DE", "AT", "CH"}),
    "benelux": frozenset({"BE", "NL", "LU"}),
    "nordics": _NORDICS, "nordic": _NORDICS, "europe": _EUROPE, "eu": _EUROPE,
}
# A bracketed part anywhere, and a part after a spaced dash at the end.
_BRACKETED: Final = re.compile(r"[(\[]([^()\[\]]*)[)\]]")
_DASHED: Final = re.compile(r"\s[-\u2010-\u2015]+\s*([^-\u2010-\u2015()\[\]]+?)\s*$")
# The words that join a legal name and a trade name in raw text, standing between two
# words (after a space or an opening bracket, before a space): "dba", "d/b/a", "d.b.a.",
# "doing business as", "trading as", "t/a" ("T/A", "t / a", "T/As": trading as, session
# 30), "aka", "a.k.a.", "a/k/a", "also known as" (session 30). `normalize_name` reads each
# as "dba" before anything else (so do `_drop_home_qualifiers`' split, kept by `split`: one
# group, and the folded tokens); `_TRADE_NAME_PHRASES` reads the phrases in folded tokens
# too. "t/a" is read only with its slash: a bare "TA" is a word ("TA Associates").
# A marker may stand in quotes or end in a colon or comma ('Smith Ltd "aka" X', "Smith Ltd
# AKA: X", session 30 second round): "dba" was read so through the folded tokens, "t/a"
# and "aka" only here, so such a spelling was another customer again.
_TRADE_NAME_RAW: Final = re.compile(
    r"(?<=\S)((?:\s+[\"'\u2018\u201c]?|\s*[(\[]\s*)"
    r"(?:d\s*/\s*b\s*/\s*a|d\.?\s?b\.?\s?a\.?|doing\s+business\s+as|trading\s+as"
    r"|t\s*/\s*as?|a\s*/\s*k\s*/\s*a|a\.?\s?k\.?\s?a\.?|also\s+known\s+as)"
    r"[\"'\u2019\u201d]?:?,?)(?=\s+\S)",
    re.IGNORECASE)
# What every marker above starts with (a space, bracket or quote, then d, t or a): most
# names have none, and this costs a quarter of the full pattern's search (1.3 us a name).
_TRADE_NAME_START: Final = re.compile(r"[\s(\[\"'\u2018\u201c][dta]", re.IGNORECASE)


def _is_home(place: str, country: str | None) -> bool:
    """Whether `place` (a qualifier's raw text) names `country` or a region containing it;
    with no country, whether it names any country or region (the name's own place)."""
    key = " ".join(_fold_text(place).split())
    if not any(ch.isalpha() for ch in key):
        return False  # "(2019)", "(276)": a year or a number, not a place
    region = _REGIONS.get(key)
    if region is not None and (country is None or country in region):
        return True
    if country is None:
        return normalize_country(place) is not None
    # A region's name may also be a country's code ("NA": North America, and Namibia):
    # the registration's own country is home either way (session 28 rival review).
    return normalize_country(place) == country


def _drop_home_qualifiers(name: str, country: str | None) -> str:
    """`name` without the qualifiers naming the registration's own country or region
    (full-width brackets and dashes read as ASCII ones, NFKC); with no country, without
    those naming any country or region: a name filed without a country is weighed against
    every country's names, and its qualifier would otherwise keep it from the one it names
    (session 29 rival review: "Acme Corp (USA)" with no country was "acme corp usa", 0.5
    against the US holder's "acme", approved unseen; with the country, a person decides)."""
    # The signs first, as `_fold_text` reads them: NFKC spells "™" as "TM", which then
    # stayed a word ("Acme Corp™" in the US was "acme corptm", another customer than
    # "acme"; session 28, tests/e2e/test_rival_spellings.py).
    out = name if name.isascii() else unicodedata.normalize("NFKC", name.translate(_SIGNS))
    if "(" in out or "[" in out:
        out = _BRACKETED.sub(lambda m: " " if _is_home(m.group(1), country) else m.group(0),
                             out)
    if _TRADE_NAME_RAW.search(out) is None:
        out = _drop_dashed_home(out, country)
    else:
        # Each name of "X dba Y" ends where the other begins: "Acme Ltd - UK dba Acme
        # Cloud" in GB is "acme dba acme cloud" (session 29, `SpellingRules`: the dash
        # qualifier of the legal name stayed, with the legal form before it, and a rival's
        # filing was another customer than the name-only holder's "Acme Ltd").
        pieces = _TRADE_NAME_RAW.split(out)
        out = "".join(piece if i % 2 else _drop_dashed_home(piece, country)
                      for i, piece in enumerate(pieces))
    return out if _fold_text(out).split() else name


def _drop_dashed_home(text: str, country: str | None) -> str:
    dashed = _DASHED.search(text)
    if dashed is not None and _is_home(dashed.group(1), country):
        return text[: dashed.start()]
    return text


# "X dba Y" (also "d/b/a", "d.b.a.", "doing business as", "trading as", "t/a", "aka",
# "a.k.a.", "a/k/a", "also known as": `_TRADE_NAME_RAW`): one customer
# known by both names. The normalised name keeps both, each normalised on its own, joined
# by " dba "; `name_forms` gives them back, and the index files and asks every form.
_TRADE_NAME_PHRASES: Final = {("doing", "business", "as"): "dba", ("trading", "as"): "dba"}
_TRADE_NAME: Final = "dba"


def _trade_name_parts(tokens: list[str]) -> list[list[str]]:
    """`tokens` split at every "dba" standing between two words (one at either end is a
    word of the name: "DBA Solutions")."""
    parts: list[list[str]] = [[]]
    last = len(tokens) - 1
    for i, token in enumerate(tokens):
        if token == _TRADE_NAME and 0 < i < last:
            parts.append([])
        else:
            parts[-1].append(token)
    return [part for part in parts if part]


def _spell_trade_name(tokens: list[str]) -> list[str]:
    if "as" not in tokens:
        return tokens
    out: list[str] = []
    i = 0
    while i < len(tokens):
        for phrase, word in _TRADE_NAME_PHRASES.items():
            if tuple(tokens[i : i + len(phrase)]) == phrase and 0 < i < len(tokens) - len(phrase):
                out.append(word)
                i += len(phrase)
                break
        else:
            out.append(tokens[i])
            i += 1
    return out


# A customer is known by at most two names: its legal one and one trade name. Every form
# is filed under the registration's key and asked, so a chain "A dba B dba C dba ..."
# read as forms let one name-only registration hold every customer it listed (session 28
# rival review); such a chain is one name.
_MAX_NAME_FORMS: Final = 2


def name_forms(normalized_name: str) -> tuple[str, ...]:
    """The names a normalised name is known by: each side of a "dba" ("northwind dba
    contoso analytics" is "northwind" and "contoso analytics"), else the name itself (also
    a chain naming more than two: one name)."""
    if " dba " not in normalized_name:
        return (normalized_name,)
    parts = _trade_name_parts(normalized_name.split())
    forms = tuple(dict.fromkeys(" ".join(part) for part in parts))
    return forms if len(forms) <= _MAX_NAME_FORMS else (normalized_name,)


@lru_cache(maxsize=65_536)
def normalize_name(name: str, country: str | None = None) -> str:
    """A company name reduced to the tokens that identify it.

    Accents stripped, case folded, ``&`` read as "and", punctuation removed, whitespace
    collapsed, letters spelled out one by one joined ("I B M" -> "ibm"), a leading "The"
    dropped, a few unambiguous abbreviations expanded ("Intl"),
    marks read as spaces ("™", "Ⓡ", "ᵀᴹ", a bracketed "(TM)" or "(R)"),
    and trailing legal-entity forms removed in many languages, repeatedly ("Acme Holdings
    GmbH & Co. KG" -> "acme holdings"). Legal forms are only removed at the end, and never
    so that nothing is left: a name made only of legal-form words keeps its first word
    ("AB Inc" -> "ab", like "AB"; "Limited Company" -> "limited").

    With ``country`` (the ISO code the account is registered in), a bracketed qualifier
    anywhere or one after a spaced dash at the end naming that country or a region
    containing it goes: "Acme Corp (UK) Ltd" in GB and "Acme Corporation - EMEA" in DE are
    "acme"; "Acme Corp (UK)" in the US stays "acme corp uk". Without ``country`` a
    qualifier naming any country or region goes ("Acme Corp (UK)" is "acme": the name is
    then weighed against every country's, never confidently). "X dba Y" keeps both names,
    each normalised on its own ("acme corp d/b/a acme cloud" -> "acme dba acme cloud";
    `name_forms`); "X t/a Y" and "X aka Y" are "X dba Y" (`_TRADE_NAME_RAW`).

    The function is idempotent: ``normalize_name(normalize_name(x, c), c) ==
    normalize_name(x, c)``.
    """
    if "(" in name or "[" in name or not name.isascii():
        unmarked = _drop_marks(name)
        name = unmarked if _fold_text(unmarked).split() else name  # a mark alone stays
    if _TRADE_NAME_START.search(name) is not None and _TRADE_NAME_RAW.search(name) is not None:
        # Every marker of a trade name is "dba" from here on (session 30: "t/a", "aka").
        # (The space after a marker is not its own: two in a row are both read.)
        name = _TRADE_NAME_RAW.sub(f" {_TRADE_NAME}", name)
    if "(" in name or "[" in name or "-" in name or not name.isascii():
        name = _drop_home_qualifiers(name, country)
    tokens = _fold_text(name).split()
    if not tokens:
        return ""
    if _TRADE_NAME in tokens or "as" in tokens or "d" in tokens:
        # Split before anything else goes: a legal form at the end of the first name
        # ("Acme Corp dba Acme Cloud") is the first name's own.
        spelled = _spell_trade_name(_join_spelled_out(tokens))
        parts = _trade_name_parts(spelled)
        if len(parts) > 1:
            # (A chain naming more than two is one name: `name_forms` gives it back whole.)
            forms = dict.fromkeys(" ".join(_normalize_tokens(part)) for part in parts)
            return f" {_TRADE_NAME} ".join(forms)
    return " ".join(_normalize_tokens(tokens))


def _normalize_tokens(tokens: list[str]) -> list[str]:
    # Until nothing more goes: each step may uncover work for another ("株式会社 The Acme":
    # "The" is first once the form has gone; "アクメ株式会社 Inc": the glued form is last
    # once "Inc" has; "株式会社Intl": "intl" stands alone once the form has gone). One pass
    # left "the acme", "アクメ株式会社" and "intl", other names than "acme", "アクメ" and
    # "international", and not idempotent (rival review, session 26).
    while True:
        before = tokens
        tokens = _join_spelled_out(tokens)
        tokens = [_ABBREVIATIONS.get(token, token) for token in tokens]
        while len(tokens) > 1 and tokens[0] == "the":
            tokens = tokens[1:]
        tokens = _strip_legal_suffixes(_strip_cjk_forms(tokens))
        if tokens == before:
            return tokens


def sort_name_tokens(normalized_name: str) -> str:
    """The tokens of a normalised name in sorted order: the form names are compared in."""
    return " ".join(sorted(normalized_name.split()))


def name_similarity(a_norm: str, b_norm: str) -> float:
    """Similarity in [0, 1] of two names already passed through :func:`normalize_name`.

    The measure is rapidfuzz's token-sort ratio: the normalised Indel similarity of the two
    names with their tokens sorted. Why this one:

    * word order does not matter ("Bank Acme" / "Acme Bank") but every token counts, so
      "acme" vs "acme holdings" scores 0.47 rather than the 0.9-1.0 that ``WRatio`` or
      ``token_set_ratio`` give -- those treat a name contained in another as a match, which
      would merge every "Acme Something" into "Acme";
    * a one-letter typo costs in proportion to the name's length ("acme"/"acne" 0.75,
      "microsoft"/"mircosoft" 0.89), so short names need to be exact to pass a 0.9
      threshold while long names tolerate a slip;
    * it is symmetric and cheap, and because names are pre-sorted once when indexed the
      index can score with the plain ``ratio`` and get exactly this number.
    """
    if a_norm == b_norm:
        return 1.0
    return fuzz.ratio(sort_name_tokens(a_norm), sort_name_tokens(b_norm)) / 100.0


# --------------------------------------------------------------------------------------
# Countries
# --------------------------------------------------------------------------------------

# Everyday names that pycountry's ISO names do not cover.
_COUNTRY_ALIASES: Final = {
    "uk": "GB", "u k": "GB", "great britain": "GB", "britain": "GB", "england": "GB",
    "scotland": "GB", "wales": "GB", "northern ireland": "GB", "u s": "US", "u s a": "US",
    "america": "US", "united states of america": "US", "holland": "NL",
    "the netherlands": "NL", "russia": "RU", "south korea": "KR", "korea": "KR",
    "republic of korea": "KR", "north korea": "KP", "turkey": "TR", "turkiye": "TR",
    "ivory coast": "CI", "cote d ivoire": "CI", "czech republic": "CZ", "czechia": "CZ",
    "vatican": "VA", "macedonia": "MK", "swaziland": "SZ", "burma": "MM", "uae": "AE",
    "deutschland": "DE", "osterreich": "AT", "schweiz": "CH", "suisse": "CH",
    "espana": "ES", "italia": "IT", "brasil": "BR", "mexico": "MX", "polska": "PL",
    "nederland": "NL", "sverige": "SE", "norge": "NO", "danmark": "DK", "suomi": "FI",
    "nippon": "JP", "hong kong": "HK", "macau": "MO", "laos": "LA", "syria": "SY",
    "moldova": "MD", "palestine": "PS", "cape verde": "CV", "east timor": "TL",
}  # fmt: skip


@lru_cache(maxsize=1024)
def normalize_country(value: str) -> str | None:
    """ISO 3166-1 alpha-2 code (upper case) for an alpha-2/alpha-3/numeric code or a name.

    None when the value is not recognisably a country.
    """
    text = value.strip()
    if not text:
        return None
    key = " ".join(_fold_text(text).split())
    alias = _COUNTRY_ALIASES.get(key)
    if alias is not None:
        return alias
    for candidate in (text, key):
        try:
            country = pycountry.countries.lookup(candidate)
        except LookupError:
            continue
        return str(country.alpha_2).upper()
    return None
