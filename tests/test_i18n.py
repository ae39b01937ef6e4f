"""Translations for Polish, Russian and Swedish users: complete, faithful to their placeholders, compiled, served."""

import io
import os
import re
import shutil
from pathlib import Path

import polib
import pytest
from django.conf import settings
from django.core.management import call_command
from django.urls import reverse
from django.utils import translation

LOCALE_DIR = Path(settings.BASE_DIR) / "locale"
TRANSLATED = ["pl", "ru", "sv"]
NPLURALS = {"pl": 3, "ru": 3, "sv": 2}
# A printf-style placeholder (named or not, %% included) and a str.format one ({name}, {0}, {}).
PERCENT_PLACEHOLDER = re.compile(r"%(?:\([^)]+\))?[-#0 +]*\d*(?:\.\d+)?[diouxXeEfFgGcrs%]")
NAMED_PLACEHOLDER = re.compile(r"%\([^)]+\)[-#0 +]*\d*(?:\.\d+)?[diouxXeEfFgGcrs]")
BRACE_PLACEHOLDER = re.compile(r"\{[^{}\s]*\}")


def source_catalog(language: str) -> polib.POFile:
    return polib.pofile(str(LOCALE_DIR / language / "LC_MESSAGES" / "django.po"))


def compiled_catalog(language: str) -> polib.MOFile:
    return polib.mofile(str(LOCALE_DIR / language / "LC_MESSAGES" / "django.mo"))


def placeholders(text: str, *, printf: bool) -> list[str]:
    """The placeholders a translation must keep: all printf ones in python-format strings, named ones anywhere."""
    found = PERCENT_PLACEHOLDER.findall(text) if printf else NAMED_PLACEHOLDER.findall(text)
    return sorted(found + BRACE_PLACEHOLDER.findall(text))


def translations(entry) -> list[str]:
    return (
        [entry.msgstr_plural[index] for index in sorted(entry.msgstr_plural)] if entry.msgid_plural else [entry.msgstr]
    )


def as_dict(catalog) -> dict[tuple[str | None, str], tuple[str, ...]]:
    return {(entry.msgctxt, entry.msgid): tuple(translations(entry)) for entry in catalog if not entry.obsolete}


def h1(response) -> str:
    return re.search(r"<h1>(.*?)</h1>", response.content.decode(), re.S).group(1).strip()


def test_settings_offer_the_four_languages_with_english_first():
    assert [code for code, _ in settings.LANGUAGES] == ["en", "pl", "ru", "sv"]
    assert settings.LANGUAGE_CODE == "en"
    assert LOCALE_DIR in [Path(path) for path in settings.LOCALE_PATHS]
    middleware = settings.MIDDLEWARE
    # After sessions (it may read them), before CommonMiddleware (which may redirect with the language known).
    assert (
        middleware.index("django.contrib.sessions.middleware.SessionMiddleware")
        < middleware.index("django.middleware.locale.LocaleMiddleware")
        < middleware.index("django.middleware.common.CommonMiddleware")
    )


@pytest.mark.parametrize("language", TRANSLATED)
def test_catalog_has_no_untranslated_fuzzy_or_obsolete_entries(language):
    catalog = source_catalog(language)
    assert len(catalog) > 0
    assert [entry.msgid for entry in catalog.untranslated_entries()] == []
    assert [entry.msgid for entry in catalog.fuzzy_entries()] == []
    assert [entry.msgid for entry in catalog.obsolete_entries()] == []
    assert not catalog.metadata_is_fuzzy
    assert catalog.metadata["Language"] == language


@pytest.mark.parametrize("language", TRANSLATED)
def test_catalog_has_every_plural_form_of_its_language(language):
    catalog = source_catalog(language)
    assert catalog.metadata["Plural-Forms"].startswith(f"nplurals={NPLURALS[language]};")
    plural_entries = [entry for entry in catalog if entry.msgid_plural]
    assert plural_entries
    incomplete = [
        entry.msgid
        for entry in plural_entries
        if sorted(entry.msgstr_plural) != list(range(NPLURALS[language])) or not all(entry.msgstr_plural.values())
    ]
    assert incomplete == []


@pytest.mark.parametrize("language", TRANSLATED)
def test_translations_keep_the_placeholders_of_their_source(language):
    mismatches = []
    for entry in source_catalog(language):
        printf = "python-format" in entry.flags
        for index, text in enumerate(translations(entry)):
            # Plural form 0 translates msgid; the others translate msgid_plural.
            source = entry.msgid_plural if entry.msgid_plural and index > 0 else entry.msgid
            if placeholders(text, printf=printf) != placeholders(source, printf=printf):
                mismatches.append((entry.msgid, text))
    assert mismatches == []


@pytest.mark.parametrize("language", TRANSLATED)
def test_committed_mo_file_matches_its_po_file(language):
    """`make run` on a machine without gettext serves the committed .mo: it must say what the .po says."""
    source, compiled = source_catalog(language), compiled_catalog(language)
    assert as_dict(compiled) == as_dict(source)
    assert compiled.metadata["Plural-Forms"] == source.metadata["Plural-Forms"]


@pytest.mark.parametrize(
    ("language", "words"),
    [
        ("pl", ["1 kliknięcie", "2 kliknięcia", "5 kliknięć", "22 kliknięcia", "112 kliknięć"]),
        ("ru", ["1 клик", "2 клика", "5 кликов", "21 клик", "112 кликов"]),
        ("sv", ["1 klick", "2 klick", "5 klick", "21 klick", "112 klick"]),
    ],
)
def test_plural_forms_follow_the_numbers_rules(language, words):
    numbers = [int(word.split()[0]) for word in words]
    with translation.override(language):
        rendered = [translation.ngettext("%(total)s click", "%(total)s clicks", n) % {"total": n} for n in numbers]
    assert rendered == words


EXPECTED_LOGIN = {
    "en": "Log in to Goalpost",
    "pl": "Zaloguj się do Goalpost",
    "ru": "Вход в Goalpost",
    "sv": "Logga in på Goalpost",
}
EXPECTED_AFFILIATES = {"en": "Affiliates", "pl": "Partnerzy", "ru": "Партнеры", "sv": "Partner"}


def test_login_page_is_english_without_a_preference(client):
    response = client.get(reverse("login"))
    assert h1(response) == "Log in to Goalpost"
    assert '<html lang="en">' in response.content.decode()


@pytest.mark.parametrize("language", TRANSLATED)
def test_login_page_follows_accept_language(client, language):
    response = client.get(reverse("login"), headers={"accept-language": f"{language},en;q=0.5"})
    assert h1(response) == EXPECTED_LOGIN[language]
    assert f'<html lang="{language}">' in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(("language", "count"), [("pl", "5 partnerów"), ("ru", "5 партнеров"), ("sv", "5 partner")])
def test_manager_page_follows_the_language_cookie(client, alice, language, count):
    client.force_login(alice.manager)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    response = client.get(reverse("manage:affiliate_list", kwargs={"program_slug": alice.program.slug}))
    assert h1(response) == EXPECTED_AFFILIATES[language]
    assert count in response.content.decode()  # alice's program has five affiliates in all statuses


@pytest.mark.django_db
def test_switcher_changes_the_language_and_returns_to_the_page(client, alice):
    client.force_login(alice.manager)
    page = reverse("manage:affiliate_list", kwargs={"program_slug": alice.program.slug}) + "?status=approved"
    assert h1(client.get(page)) == "Affiliates"

    response = client.post(reverse("set_language"), {"language": "ru", "next": page})
    assert response.status_code == 302
    assert response["Location"] == page
    assert client.cookies[settings.LANGUAGE_COOKIE_NAME].value == "ru"
    assert h1(client.get(page)) == "Партнеры"

    client.post(reverse("set_language"), {"language": "sv", "next": page})
    assert h1(client.get(page)) == "Partner"
    client.post(reverse("set_language"), {"language": "en", "next": page})
    assert h1(client.get(page)) == "Affiliates"


def test_switcher_posts_every_language_by_its_own_name_with_the_current_page_as_next(client):
    response = client.get(reverse("login") + "?next=/p/demo/", headers={"accept-language": "pl"})
    html = response.content.decode()
    form = re.search(
        r'<form method="post" action="([^"]+)">(.*?)</form>', html[html.index("language-switcher") :], re.S
    )
    assert form.group(1) == reverse("set_language")
    assert 'name="csrfmiddlewaretoken"' in form.group(2)
    assert re.search(r'name="next" value="([^"]*)"', form.group(2)).group(1) == "/accounts/login/?next=/p/demo/"
    buttons = re.findall(
        r'<button type="submit" class="link" name="language" value="(\w+)" lang="\w+"([^>]*)>([^<]+)<', form.group(2)
    )
    assert [(code, name) for code, _, name in buttons] == [
        ("en", "English"),
        ("pl", "Polski"),
        ("ru", "Русский"),
        ("sv", "Svenska"),
    ]
    assert [code for code, attributes, _ in buttons if 'aria-current="true"' in attributes] == ["pl"]
    assert '<span class="visually-hidden">Język: </span><span lang="pl">Polski</span>' in html


# What `make messages` passes as --ignore; makemessages also skips hidden folders (.git, .venv…) by itself.
MAKEMESSAGES_IGNORE = [".venv", "node_modules", "staticfiles"]
# Git-ignored output folders (.gitignore): no source in them, only files that would slow the copy down.
NOT_SOURCE = {"__pycache__", "build", "sent_emails", "test-results"}
GETTEXT_PROGRAMS = ["xgettext", "msguniq", "msgmerge", "msgattrib"]


def copy_translatable_sources(target: Path) -> None:
    """The files makemessages reads (.py, .html, .txt), at the same relative paths under ``target``.

    makemessages turns each template into a .py file next to it while it runs: in a copy, nothing is written
    into the working tree (or the real catalogs) while other tests or people use it.
    """
    base = Path(settings.BASE_DIR)
    for directory, subdirectories, files in os.walk(base):
        subdirectories[:] = [
            name
            for name in subdirectories
            if not name.startswith(".")
            and name not in MAKEMESSAGES_IGNORE
            and name not in NOT_SOURCE
            and not name.endswith(".egg-info")
        ]
        for name in files:
            if name.endswith((".py", ".html", ".txt")):
                source = Path(directory, name)
                destination = target / source.relative_to(base)
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, destination)


def message_keys(catalog) -> set[tuple[str | None, str, str]]:
    return {(entry.msgctxt, entry.msgid, entry.msgid_plural) for entry in catalog if not entry.obsolete}


def test_catalogs_hold_exactly_the_strings_the_code_marks(tmp_path, monkeypatch, settings):
    """`make messages` run now would neither add nor drop an entry: every marked string is in each catalog.

    Runs Django's makemessages (xgettext) over a copy of the sources into an empty locale folder, as the Makefile
    does, and compares its msgids with the committed catalogs. A string added to the code without `make messages`
    is served in English to every user; an entry whose string left the code is dead weight to translate.
    """
    absent = [program for program in GETTEXT_PROGRAMS if shutil.which(program) is None]
    if absent:
        pytest.fail(
            f"GNU gettext is not installed ({', '.join(absent)} not found), so the strings marked for translation "
            "cannot be extracted and compared with the catalogs. Install it: apt-get install gettext.",
            pytrace=False,
        )
    sources = tmp_path / "sources"
    copy_translatable_sources(sources)
    (sources / "locale").mkdir()
    settings.LOCALE_PATHS = [str(sources / "locale")]
    monkeypatch.chdir(sources)
    call_command(
        "makemessages",
        locale=["pl"],
        ignore_patterns=MAKEMESSAGES_IGNORE,
        add_location="file",
        no_obsolete=True,
        verbosity=0,
        stdout=io.StringIO(),
    )
    marked = message_keys(polib.pofile(str(sources / "locale" / "pl" / "LC_MESSAGES" / "django.po")))
    assert len(marked) > 100  # the extraction saw the project, not an empty folder

    problems = []
    for language in TRANSLATED:
        committed = message_keys(source_catalog(language))
        problems += [f"{language}: missing {msgid!r}" for _, msgid, _ in sorted(marked - committed, key=str)]
        problems += [f"{language}: no longer marked {msgid!r}" for _, msgid, _ in sorted(committed - marked, key=str)]
    if problems:
        pytest.fail(
            "The catalogs do not match the strings the code marks; run `make messages`, translate the new entries "
            "and commit the .po and .mo files:\n" + "\n".join(problems),
            pytrace=False,
        )


# xgettext (behind makemessages) finds strings by the function's name only: _, gettext_lazy, ngettext, pgettext…
TRANSLATION_IMPORT = re.compile(r"^from django\.utils\.translation import (.+)$", re.M)
ALIASES_MAKEMESSAGES_KNOWS = {"_"}


def test_translation_functions_are_imported_under_names_makemessages_knows():
    sources = [
        path
        for app in ["affiliates", "tracking", "goals", "reports", "config"]
        for path in (Path(settings.BASE_DIR) / app).rglob("*.py")
    ]
    unknown = [
        (path.relative_to(settings.BASE_DIR).as_posix(), name)
        for path in sources
        for names in TRANSLATION_IMPORT.findall(path.read_text())
        for name in names.split(",")
        if " as " in name and name.split(" as ")[1].strip() not in ALIASES_MAKEMESSAGES_KNOWS
    ]
    assert unknown == []


@pytest.mark.django_db
def test_postback_setup_page_translates_the_parameter_descriptions_and_click_columns(client, alice):
    client.force_login(alice.manager)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "pl"
    slug = alice.program.slug
    postbacks = client.get(reverse("manage:postback_setup", kwargs={"program_slug": slug})).content.decode()
    clicks = client.get(reverse("manage:click_list", kwargs={"program_slug": slug})).content.decode()
    assert "<td>Kwota zamówienia, z kropką jako separatorem dziesiętnym: 49.90.</td>" in postbacks
    assert "The order amount" not in postbacks
    assert "<th>Oznaczenia</th>" in clicks


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("language", "heading"),
    [("en", "Goals for November 2026"), ("pl", "Cele na listopad 2026"), ("ru", "Цели на ноябрь 2026")],
)
def test_the_month_reads_as_part_of_the_sentence(client, alice, language, heading):
    # Django's month-and-year format is the standalone form ("Listopad 2026"); inside a sentence Polish and
    # Russian write the month in lower case.
    client.force_login(alice.manager)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    response = client.get(reverse("manage:goal_board", kwargs={"program_slug": alice.program.slug, "month": "2026-11"}))
    assert heading in h1(response)
