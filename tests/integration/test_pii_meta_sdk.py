"""Backflow's identifier normalisation against Meta's own code (issue 13).

Installs Meta's official Node SDK (npm `facebook-nodejs-business-sdk`,
`ServerSideUtils.normalizeAndHash`) into build/npm/ (cached between runs),
generates a deterministic corpus of a few thousand tricky and ordinary values
per field, hashes each with the SDK and with Backflow (tests/tools/pii_norm,
which calls bf_pii_normalize_hash as the destinations do), and requires 100%
agreement on every class where the SDK follows Meta's documented rule.

Where the SDK departs from the documented rule Backflow follows the
documentation: those classes are listed in EXCLUDED with the reason (and in
docs/destinations-ads.md), still run through both, and their agreement is
printed but not asserted. A failed npm install fails the test: it never skips.
"""
import json
import os
import random
import shutil
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("BACKFLOW_ROOT") or os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

from bfhelp import BIN  # noqa: E402

SDK_PACKAGE = "facebook-nodejs-business-sdk"
SDK_VERSION = os.environ.get("META_SDK_VERSION", "24.0.1")  # pinned: a new SDK is a reviewed change
SDK_DIR = os.environ.get("META_SDK_DIR") or os.path.join(ROOT, "build", "npm", f"meta-sdk-{SDK_VERSION}")
TOOL = os.path.join(os.path.dirname(os.path.abspath(BIN)), "tools", "pii_norm")
SEED = 13
PER_CLASS = 160

# What JavaScript's String.prototype.trim() removes (the SDK trims with it)
# and Unicode's White_Space + U+FEFF (what Backflow trims): identical except
# U+0085, which is a class of its own below.
PADDING = ["\u00a0", "\u1680", "\u2000", "\u2003", "\u2009", "\u200a", "\u2028", "\u2029",
           "\u202f", "\u205f", "\u3000", "\ufeff", " ", "\t", "\n", "\r", "\v", "\f"]

# Letters by script, upper and lower case, all precomposed (NFC).
SCRIPTS = {
    "ascii": "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    "latin1": "ÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖØÙÚÛÜÝÞßàáâãäåæçèéêëìíîïðñòóôõöøùúûüýþÿ",
    "latin_ext_a": "ĀāĂăĄąĆćČčĎďĐđĒēĘęĚěĞğĢģĪīĮįİıĶķĹĺĻļĽľŁłŃńŅņŇňŌōŐőŒœŔŕŘřŚśŞşŠšŢţŤťŪūŮůŰűŲųŹźŻżŽžŸ",
    "vietnamese": "ẠạẢảẤấẦầẨẩẪẫẬậẮắẰằẲẳẴẵẶặẸẹẺẻẼẽẾếỀềỂểỄễỆệỈỉỊịỌọỎỏỐốỒồỔổỖỗỘộỚớỜờỞởỠỡỢợỤụỦủỨứỪừỬửỮữỰựỲỳỴỵỶỷỸỹĐđƠơƯư",
    "greek": "ΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩΆΈΉΊΌΎΏαβγδεζηθικλμνξοπρστυφχψωάέήίόύώς",
    "cyrillic": "АБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯабвгдеёжзийклмнопрстуфхцчшщъыьэюяЄєІіЇїЎўҐґ",
    "armenian": "ԱԲԳԴԵԶԷԸԹԺԻԼԽԾԿՀՁՂՃՄՅՆՇՈՉՊՋՌՍՎՏՐՑՒՓՔՕՖաբգդեզէըթժիլխծկհձղճմյնշոչպջռսվտրցւփքօֆ",
    "georgian": "ᲐᲑᲒᲓᲔᲕᲖᲗᲘᲙᲚᲛᲜᲝᲞᲟᲠᲡᲢᲣᲤᲥᲦᲧᲨᲩᲪᲫᲬᲭᲮᲯᲰაბგდევზთიკლმნოპჟრსტუფქღყშჩცძწჭხჯჰ",
    "fullwidth": "ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ",
    "german_sharp_s": "ẞßSTRAEUNGstraeung",
    "turkish": "İIıiÇçĞğÖöŞşÜüABCDEFGHJKLMNOPRSTUVYZ",
    "cherokee": "ᎠᎡᎢᎣᎤᎥᎦᎧᎨᎩᎪᎫᎬᎭᎮᎯ",
    "cjk": "山田太郎佐藤花子李王张陈",
    "arabic": "محمدعليفاطمة",
    "hebrew": "דודשרהכהן",
    "devanagari": "रामशर्मागीता",
}

# Classes where the SDK departs from Meta's documented rule; Backflow follows
# the documentation (docs/destinations-ads.md, "Meta's SDK and the rules").
EXCLUDED = {
    "em_non_ascii": "SDK rejects any non-ASCII address (its email-validator regex is ASCII-only); "
                    "Meta's rule is trim + lowercase, so Backflow hashes josé@example.com",
    "em_nel_padding": "JavaScript's trim() does not remove U+0085 (NEXT LINE); it is Unicode "
                      "White_Space and Backflow trims it",
    "fn_spaces_punctuation_digits": "SDK only trims and lower-cases fn/ln; Meta's rule is "
                                    "letters only, no punctuation: Backflow removes them",
    "fn_decomposed": "SDK hashes decomposed (NFD) input as given; Backflow composes names to NFC "
                     "(Meta names no normal form; see docs)",
    "ph_other_symbols": "SDK removes only - @ # < > ' \" , ; space ( ) + and a-z; Meta's rule "
                        "removes every symbol ('.', '/', ':', '_', tabs, Unicode spaces, "
                        "non-ASCII letters), as Backflow does",
    "ph_fullwidth_digits": "SDK keeps full-width digits as they are; Backflow reads them as the "
                           "digits they are",
    "ph_many_leading_zeros": "SDK strips at most two leading zeros, and only from numbers of its "
                             "'international' shape; Meta's rule removes any leading zeros",
    "ph_16_digits": "SDK accepts 16 characters; E.164 numbers have at most 15 digits: Backflow "
                    "rejects",
    "ct_other_punctuation": "SDK removes only digits, whitespace and ( ) . -; Meta's rule is no "
                            "punctuation or special characters: Backflow keeps letters only",
    "st_us_full_names": "Meta's rule is the 2-letter ANSI code for US states; SDK hashes the full "
                        "name, Backflow maps it to the code",
    "zp_non_us_hyphen": "SDK cuts every postcode at '-'; Meta's rule cuts only US ZIP+4 to 5 "
                        "digits, so Backflow keeps 1000-205 (Portugal) whole",
    "zp_zip9_no_dash": "Meta's rule: US zip codes as their first 5 digits; SDK keeps 9 digits "
                       "written without the dash",
    "country_names_alpha3": "SDK rejects anything but an alpha-2 code; Backflow also accepts "
                            "alpha-3 codes and common names (UK for GB) and sends their alpha-2",
    "doby_out_of_range": "SDK accepts any 4 digits; Meta's rule is 1900 to the current year",
    "dob_full_dates": "SDK rejects or misreads a full date; Backflow takes the year, month or "
                      "day from it",
    "fi_non_letter_start": "SDK takes the first UTF-16 unit of the raw value (a quote, a digit, "
                           "half a surrogate pair); Meta's FI is the first letter of the name",
}


def _pad(rng, s):
    left = "".join(rng.choice(PADDING) for _ in range(rng.randint(0, 3)))
    right = "".join(rng.choice(PADDING) for _ in range(rng.randint(0, 3)))
    return left + s + right


def _word(rng, script, lo=2, hi=9):
    return "".join(rng.choice(SCRIPTS[script]) for _ in range(rng.randint(lo, hi)))


def _greek_word(rng):
    # Capitals with a sigma in the middle and at the end: σ inside, ς final.
    core = "".join(rng.choice("ΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΤΥΦΧΨΩ") for _ in range(rng.randint(2, 6)))
    i = rng.randint(1, len(core) - 1)
    return core[:i] + "Σ" + core[i:] + "Σ"


def _rand_case(rng, s):
    return "".join(c.upper() if rng.random() < 0.5 and len(c.upper()) == 1 else c for c in s)


def _email(rng):
    local_chars = "abcdefghijklmnopqrstuvwxyz0123456789"
    parts = ["".join(rng.choice(local_chars) for _ in range(rng.randint(1, 8)))
             for _ in range(rng.randint(1, 3))]
    local = rng.choice([".", "_", "-", "+"]).join(parts)
    domain = rng.choice(["example.com", "gmail.com", "mail.example.co.uk", "b-x.de", "corp.io"])
    return _rand_case(rng, f"{local}@{domain}")


def _phone_digits(rng):
    if rng.random() < 0.4:
        return "1" + str(rng.randint(2, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(9))
    cc = rng.choice(["44", "33", "49", "81", "91", "61", "34", "39", "55", "52", "86", "7", "353"])
    return cc + str(rng.randint(1, 9)) + "".join(
        str(rng.randint(0, 9)) for _ in range(rng.randint(6, 14 - len(cc))))


def _decorate_phone(rng, digits, symbols):
    out = []
    for i, d in enumerate(digits):
        if i and rng.random() < 0.3:
            out.append(rng.choice(symbols))
        out.append(d)
    s = "".join(out)
    if rng.random() < 0.5:
        s = "+" + s
    return s


SDK_PHONE_SYMBOLS = ["-", " ", "(", ")", "-", " ", "#", ",", "<", ">", "@"]


def corpus():
    """(class, field, value) triples, the same every run."""
    rng = random.Random(SEED)
    out = []

    def add(cls, field, values):
        out.extend((cls, field, v) for v in values)

    n = PER_CLASS
    # --- email
    add("em_ascii", "em", [_email(rng) for _ in range(n)])
    add("em_unicode_padding", "em", [_pad(rng, _email(rng)) for _ in range(n)])
    add("em_invalid", "em", ["not an email", "jane@", "@example.com", "jane.example.com",
                              "jane@@example.com", "jane@localhost", " ", "\u3000\u00a0"])
    add("em_prehashed", "em", [rng.randbytes(32).hex().upper() for _ in range(20)])
    add("em_non_ascii", "em", ["JOSÉ@example.com", "Üser@example.de", "ΑΝΝΑ@example.gr",
                                "jane@exämple.com"])
    add("em_nel_padding", "em", ["\u0085jane@example.com\u0085"])
    # --- phone
    spreadsheet = [("'", ""), ('"', '"'), ("", ";"), ("'", ";"), ("<", ">"), ("(", ")"), ("", ",")]
    add("ph_plain", "ph", [_phone_digits(rng) for _ in range(n)])
    add("ph_sdk_symbols", "ph", [_decorate_phone(rng, _phone_digits(rng), SDK_PHONE_SYMBOLS)
                                 for _ in range(n)])
    wrapped = []
    for _ in range(n):
        pre, post = rng.choice(spreadsheet)
        wrapped.append(_pad(rng, pre + _decorate_phone(rng, _phone_digits(rng), SDK_PHONE_SYMBOLS)
                            + post))
    add("ph_wrapped_in_symbols", "ph", wrapped)
    add("ph_letters", "ph", ["tel " + _phone_digits(rng) for _ in range(20)]
        + ["Phone +" + _phone_digits(rng) for _ in range(20)])
    zeros = []
    for _ in range(n // 2):
        d = _phone_digits(rng)
        if not d.startswith("1"):
            zeros.append(rng.choice(["00", "0", "+00", "+0"]) + d)
    add("ph_intl_prefix_zeros", "ph", zeros)
    add("ph_invalid", "ph", ["n/a", "'", "call me", "12345", "+44 123", "", ";;", "abc"])
    add("ph_prehashed", "ph", [rng.randbytes(32).hex() for _ in range(20)])
    add("ph_other_symbols", "ph", ["+1.650.555.1212", "+1/650/555/1212", "tel:+16505551212",
                                    "+1\t650\t5551212", "+1\u00a0650\u00a05551212",
                                    "+1_650_555_1212", "+1 650 555 1212 é"])
    add("ph_fullwidth_digits", "ph", ["＋１６５０５５５１２１２"])
    add("ph_many_leading_zeros", "ph", ["000442079460958", "0016505551212345"])
    add("ph_16_digits", "ph", ["+1234567890123456"])
    # --- names (fn and ln follow the same rule)
    names = []
    for script in SCRIPTS:
        for _ in range(max(8, n // 8)):
            names.append((f"fn_{script}", _pad(rng, _rand_case(rng, _word(rng, script)))))
    for _ in range(40):
        names.append(("fn_greek_final_sigma", _pad(rng, _greek_word(rng))))
    for _ in range(20):
        names.append(("fn_turkish_dotted_i", _pad(rng, "İ" + _word(rng, "turkish"))))
    for cls, v in names:
        out.append((cls, rng.choice(["fn", "ln"]), v))
    add("fn_spaces_punctuation_digits", "fn", ["Mary Ann", "O'Brien", "Anne-Marie", "Jr.", "R2D2"])
    add("fn_decomposed", "fn", ["Jose\u0301", "Zoe\u0308"])
    # --- first initial
    add("fi_letter_start", "fi", [_pad(rng, _rand_case(rng, _word(rng, rng.choice(
        ["ascii", "latin1", "vietnamese", "greek", "cyrillic", "armenian", "georgian",
         "fullwidth", "turkish"])))) for _ in range(n)])
    add("fi_non_letter_start", "fi", ["'Brien", "2Pac", "\U00010400bc"])
    # --- city, state, zip
    cities = ["San Francisco", "New York", "São Paulo", "Zürich", "Москва", "Αθήνα", "Ho Chi Minh",
              "München", "St. Louis", "Winston-Salem", "東京", "Kraków", "İzmir", "Tbilisi",
              "Երևան", "Paris (15e)", "Saint-Étienne", "Hà Nội", "Łódź", "Reykjavík"]
    add("ct_letters_spaces_digits_dots_hyphens", "ct",
        [_pad(rng, _rand_case(rng, rng.choice(cities)) + rng.choice(["", " 2", "-3", ""]))
         for _ in range(n)])
    add("ct_other_punctuation", "ct", ["Sainte-Anne-d'Auray", "Washington, D.C.", "Dar es Salaam/X"])
    us_codes = ["CA", "ny", "Tx", "wa", "FL", "il", "PR", "dc"]
    regions = ["Bavaria", "Île-de-France", "Ontario", "Québec", "New South Wales", "Kyiv",
               "Lombardia", "Κρήτη", "Hokkaidō", "Andalucía", "Tbilisi"]
    add("st_codes_and_regions", "st", [_pad(rng, rng.choice(us_codes + regions)) for _ in range(n)])
    add("st_us_full_names", "st", ["California", "New York", "District of Columbia"])
    zips = []
    for _ in range(n):
        kind = rng.randint(0, 4)
        if kind == 0:
            z = f"{rng.randint(0, 99999):05d}"
        elif kind == 1:
            z = f"{rng.randint(0, 99999):05d}-{rng.randint(0, 9999):04d}"
        elif kind == 2:
            z = rng.choice(["W1J 7BU", "SW1A 1AA", "EC1A 1BB", "M1 1AE"])
        elif kind == 3:
            z = rng.choice(["K1A 0B1", "H2X 1Y4"])
        else:
            z = f"{rng.randint(1000, 99999)}"
        zips.append(_pad(rng, _rand_case(rng, z)))
    add("zp_us_uk_ca_numeric", "zp", zips)
    add("zp_non_us_hyphen", "zp", ["1000-205", "00-950"])
    add("zp_zip9_no_dash", "zp", ["941031234"])
    # --- country
    letters = "abcdefghijklmnopqrstuvwxyz"
    add("country_alpha2_any", "country", [_pad(rng, _rand_case(rng, a + b))
                                          for a in letters for b in letters if a + b != "uk"])
    add("country_names_alpha3", "country", ["USA", "DEU", "United Kingdom", "Germany", "UK"])
    # --- gender, dates of birth
    add("ge", "ge", [_pad(rng, _rand_case(rng, rng.choice(["m", "f", "male", "female", "M.", "F.",
                                                           "x", "unknown", "other"])))
                     for _ in range(n)])
    add("doby_in_range", "doby", [_pad(rng, str(rng.randint(1900, 2025))) for _ in range(n)])
    add("doby_out_of_range", "doby", ["1850", "2999"])
    add("dobm", "dobm", [_pad(rng, rng.choice([str(m), f"{m:02d}"])) for m in
                         [rng.randint(0, 13) for _ in range(n)]])
    add("dobd", "dobd", [_pad(rng, rng.choice([str(d), f"{d:02d}"])) for d in
                         [rng.randint(0, 32) for _ in range(n)]])
    add("dob_full_dates", "dobm", ["1985-07-14", "1985/07/14"])
    return out


NODE_DRIVER = r"""
const path = require('path');
const sdk = require(path.join(process.argv[1], 'node_modules', 'facebook-nodejs-business-sdk'));
const U = sdk.ServerSideUtils;
const items = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const out = items.map(([field, value]) => {
  try { return U.normalizeAndHash(value, field); } catch (e) { return null; }
});
process.stdout.write(JSON.stringify(out));
"""


def install_sdk():
    """Installs the pinned SDK under SDK_DIR once; returns the folder or raises."""
    marker = os.path.join(SDK_DIR, "node_modules", SDK_PACKAGE, "package.json")
    if os.path.exists(marker):
        return SDK_DIR
    npm = shutil.which("npm")
    if not npm or not shutil.which("node"):
        raise AssertionError("node and npm are needed (scripts/deps.sh installs nodejs npm)")
    tmp = SDK_DIR + f".tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    with open(os.path.join(tmp, "package.json"), "w") as f:
        json.dump({"name": "backflow-meta-sdk-check", "private": True}, f)
    p = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--loglevel=error",
                        f"{SDK_PACKAGE}@{SDK_VERSION}"], cwd=tmp, capture_output=True, text=True,
                       timeout=600)
    if p.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise AssertionError(f"npm install {SDK_PACKAGE}@{SDK_VERSION} failed:\n{p.stderr[-2000:]}")
    shutil.rmtree(SDK_DIR, ignore_errors=True)
    os.replace(tmp, SDK_DIR)
    return SDK_DIR


def sdk_hashes(sdk_dir, items):
    p = subprocess.run(["node", "-e", NODE_DRIVER, sdk_dir], input=json.dumps(items),
                       capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise AssertionError(f"node driver failed:\n{p.stderr[-2000:]}")
    return json.loads(p.stdout)


def backflow_hashes(items):
    """[(hash or None, normalised text or reason)] from tests/tools/pii_norm."""
    req = "".join(f"{field} {value.encode('utf-8').hex()}\n" for field, value in items)
    p = subprocess.run([TOOL], input=req, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise AssertionError(f"pii_norm failed ({p.returncode}): {p.stderr}")
    out = []
    for line in p.stdout.splitlines():
        word, _, rest = line.partition(" ")
        if word == "ok":
            h, _, norm = rest.partition(" ")
            out.append((h, bytes.fromhex(norm).decode("utf-8", "replace")))
        else:
            out.append((None, rest))
    return out


class MetaSdkAgreement(unittest.TestCase):
    def test_normalise_and_hash_agrees_with_meta_sdk(self):
        self.assertTrue(os.access(TOOL, os.X_OK), f"{TOOL} missing: make builds tests/tools/")
        sdk_dir = install_sdk()
        rows = corpus()
        self.assertGreaterEqual(len(rows), 2000)
        items = [(field, value) for _, field, value in rows]
        sdk = sdk_hashes(sdk_dir, items)
        bf = backflow_hashes(items)
        self.assertEqual(len(sdk), len(rows))
        self.assertEqual(len(bf), len(rows))

        stats = {}
        bad = []
        for (cls, field, value), s, (b, detail) in zip(rows, sdk, bf):
            st = stats.setdefault(cls, [0, 0])
            st[1] += 1
            if s == b:
                st[0] += 1
            elif cls not in EXCLUDED:
                bad.append(f"  {cls} {field} {value!r}: sdk={s} backflow={b} ({detail})")
        compared = [k for k in stats if k not in EXCLUDED]
        agree = sum(stats[k][0] for k in compared)
        total = sum(stats[k][1] for k in compared)
        report = [f"Meta SDK {SDK_VERSION}: {agree}/{total} values agree "
                  f"({100.0 * agree / total:.2f}%) over {len(compared)} compared classes"]
        for k in sorted(EXCLUDED):
            if k in stats:
                report.append(f"  excluded {k}: {stats[k][0]}/{stats[k][1]} agree")
        print("\n".join(report), file=sys.stderr)
        # Every excluded class is exercised, so the list stays honest.
        self.assertEqual(sorted(k for k in EXCLUDED if k not in stats), [])
        self.assertEqual(bad, [], "disagreements with Meta's SDK:\n" + "\n".join(bad[:40]))
        self.assertEqual(agree, total)


if __name__ == "__main__":
    unittest.main()
