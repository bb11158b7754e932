"""The printable cover sheet of an export (通話記録提供書), as one HTML file.

HTML rather than PDF: every office PC prints it from a browser, and it needs
no font embedding or PDF library. The print CSS sets A4 with margins and keeps
table rows and the signature block from splitting across pages. Every value
from a person (recipient, reference) is escaped.
"""

from __future__ import annotations

from html import escape

# the same words as the CLI's (the governance layer does not import front ends)
ABSENT_JA = {"withheld": "非通知", "unavailable": "表示圏外", "public_phone": "公衆電話"}
DIRECTION_JA = {"in": "着信", "out": "発信"}

_CSS = """
body { font-family: "Noto Sans CJK JP", "Hiragino Kaku Gothic ProN", "Yu Gothic", Meiryo,
       sans-serif; font-size: 10.5pt; line-height: 1.55; margin: 2em auto; max-width: 50em;
       color: #000; }
h1 { font-size: 18pt; text-align: center; letter-spacing: 0.4em; margin: 0.4em 0 0.2em; }
.sub { text-align: center; font-size: 9pt; margin-bottom: 1.5em; }
.meta { text-align: right; }
table { border-collapse: collapse; width: 100%; margin: 0.6em 0 1.2em; }
th, td { border: 1px solid #000; padding: 0.25em 0.45em; vertical-align: top; }
th { background: #eee; text-align: left; white-space: nowrap; font-weight: normal; }
table.calls td, table.calls th { font-size: 8.5pt; }
td.hash { font-family: monospace; font-size: 7pt; word-break: break-all; }
ol.terms li { margin-bottom: 0.3em; }
.en { font-size: 8pt; color: #333; }
.sign { margin-top: 2em; page-break-inside: avoid; break-inside: avoid; }
.sign td { height: 3.2em; }
.sign td.line { width: 55%; }
.fp { font-family: monospace; font-size: 8pt; word-break: break-all; }
@page { size: A4; margin: 18mm 15mm; }
@media print {
  body { margin: 0; max-width: none; }
  tr, .terms, .sign { page-break-inside: avoid; break-inside: avoid; }
  thead { display: table-header-group; }
}
"""


def _e(value) -> str:
    return "-" if value is None or value == "" else escape(str(value))


def render_cover(doc: dict) -> str:
    """The cover sheet for a manifest-shaped dict (everything but ``files``)."""
    g = doc["ground"]
    actor = doc["actor"]
    req = doc.get("request")
    rows = [
        ("提供番号 / export", doc["export_id"]),
        ("提供日時 / date", doc["created_at"]),
        ("提供先 / recipient", doc["recipient"]),
        ("根拠 / ground", f"{g['label_ja']}（要綱{g['article']}） / {g['label_en']}"),
        ("参照番号 / reference", doc["reference"]),
    ]
    if req:
        rows.append(("開示請求番号 / disclosure request", req["id"]))
    if doc.get("approver"):
        rows.append(("承認者 / approved by", doc["approver"]))
    rows.append(("実施者 / provided by", f"{actor['name']}（{actor['role_ja']}）"))
    meta = "\n".join(f"<tr><th>{escape(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)

    call_rows = []
    for i, c in enumerate(doc["calls"], 1):
        far = c.get("far_number") or ABSENT_JA.get(c.get("number_absent_reason") or "", None)
        dur = f"{c['duration_s']:.0f}秒" if c.get("duration_s") is not None else None
        call_rows.append(
            f"<tr><td>{i}</td><td>{_e(c['id'])}</td><td>{_e(c.get('started_at'))}</td>"
            f"<td>{_e(DIRECTION_JA.get(c.get('direction'), c.get('direction')))}</td>"
            f"<td>{_e(far)}</td><td>{_e(c.get('near_number'))}</td><td>{_e(dur)}</td>"
            f"<td>{_e(c.get('file'))}</td><td class=\"hash\">{_e(c.get('sha256'))}</td></tr>")
    terms = doc["terms"]
    term_items = "\n".join(
        f"<li>{escape(ja)}<br><span class=\"en\">{escape(en)}</span></li>"
        for ja, en in zip(terms["ja"], terms["en"]))
    key = doc["signing_key"]
    return f"""<!DOCTYPE html>
<html lang="ja">
<head>
<meta charset="utf-8">
<title>通話記録提供書 {escape(doc['export_id'])}</title>
<style>{_CSS}</style>
</head>
<body>
<p class="meta">{escape(doc['export_id'])}<br>{_e(doc['created_at'])}</p>
<h1>通話記録提供書</h1>
<p class="sub">Provision of call records — 松本市庁舎における通話録音装置の管理及び運用に関する要綱 第8条・第9条・第10条</p>
<p>{_e(doc['recipient'])} 様</p>
<p>下記の通話記録を提供します。受領にあたり、下記の遵守事項を必ず守ってください。<br>
<span class="en">The call records below are provided to you on the ground stated. You are bound by
the terms below.</span></p>
<table class="info">
{meta}
</table>
<h2>提供する通話記録 / Call records provided（{len(doc['calls'])} 件）</h2>
<table class="calls">
<thead><tr><th>#</th><th>通話ID</th><th>通話日時</th><th>方向</th><th>相手番号</th>
<th>自局番号</th><th>通話時間</th><th>ファイル</th><th>SHA-256</th></tr></thead>
<tbody>
{chr(10).join(call_rows)}
</tbody>
</table>
<h2>遵守事項（{escape(terms['article'])}） / Terms of provision</h2>
<ol class="terms">
{term_items}
</ol>
<h2>真正性の確認 / Authenticity</h2>
<p>この提供物は装置の署名鍵で署名されています（manifest.json と manifest.sig）。同梱の README.txt の
手順で、改変がないことを確認できます。<br>
<span class="en">The bundle is signed by the appliance's key; README.txt explains how to check it.</span><br>
署名鍵の指紋 / key fingerprint (SHA-256):<br><span class="fp">{escape(key['fingerprint'])}</span></p>
<table class="sign">
<tr><th>提供者 / provided by<br>（管理責任者等）</th><td class="line"></td><th>印</th><td></td></tr>
<tr><th>受領者 / received by<br>（所属・氏名）</th><td class="line"></td><th>印</th><td></td></tr>
<tr><th>受領日 / date received</th><td class="line">　　　　年　　　月　　　日</td><th></th><td></td></tr>
</table>
</body>
</html>
"""
