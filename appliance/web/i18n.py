"""Screen texts: Japanese first (the seed's own terms), English on request.

The language is a preference cookie (``lang``), switched by ``/lang/en`` or
``/lang/ja``; nothing else depends on it. Labels of roles, grounds and ledger
kinds come from the governance modules, so the words are the same everywhere.
"""

from __future__ import annotations

LANGS = ("ja", "en")

TEXT: dict[str, tuple[str, str]] = {
    "app": ("通話録音装置", "Call recorder"),
    "nav.calls": ("通話記録", "Call records"),
    "nav.holds": ("保管延長", "Holds"),
    "nav.requests": ("開示請求", "Disclosure requests"),
    "nav.exports": ("提供", "Exports"),
    "nav.ledger": ("通話記録管理簿", "Ledger"),
    "nav.status": ("装置の状態", "Appliance status"),
    "logout": ("ログアウト", "Log out"),
    "login": ("ログイン", "Log in"),
    "login.title": ("職員ログイン", "Staff login"),
    "login.note": ("管理責任者・代理・管理取扱者のみ利用できます。操作はすべて通話記録管理簿に記録されます。",
                   "For the manager, the deputy and handlers only. Every act is written to the ledger."),
    "user": ("利用者名", "User name"),
    "password": ("パスワード", "Password"),
    "password.again": ("パスワード (再入力)", "Password (again)"),
    "password.why": ("録音の復号にはご本人のパスワードが必要です。保存はしません。",
                     "Your password unlocks the recording for this one act; it is not kept."),
    "search": ("検索", "Search"),
    "since": ("期間 (から)", "From"),
    "until": ("期間 (まで)", "Until"),
    "number": ("電話番号", "Telephone number"),
    "direction": ("方向", "Direction"),
    "dir.in": ("着信", "incoming"),
    "dir.out": ("発信", "outgoing"),
    "any": ("すべて", "any"),
    "trunk": ("回線", "Trunk"),
    "site": ("庁舎", "Site"),
    "min_duration": ("通話時間 (秒以上)", "Duration at least (s)"),
    "max_duration": ("通話時間 (秒以下)", "Duration at most (s)"),
    "notice": ("音声案内", "Notice"),
    "held": ("保管延長中", "Held"),
    "yes": ("はい", "yes"),
    "no": ("いいえ", "no"),
    "started": ("開始日時", "Started"),
    "answered": ("応答日時", "Answered"),
    "ended": ("終了日時", "Ended"),
    "duration": ("通話時間", "Duration"),
    "far": ("相手番号", "Far number"),
    "near": ("自局番号", "Near number"),
    "state": ("状態", "State"),
    "call": ("通話記録", "Call record"),
    "calls.count": ("件", "calls"),
    "open": ("開く", "Open"),
    "player": ("再生", "Listen"),
    "player.note": ("再生は閲覧として通話記録管理簿に記録されます。根拠と参照番号を入力してください。",
                    "Listening is a 閲覧 entry of the ledger: give the ground and a reference."),
    "ground": ("根拠", "Ground"),
    "reference": ("参照番号", "Reference"),
    "play": ("根拠を記録して再生", "Record the ground and play"),
    "levels": ("音量の推移 (上: 相手方, 下: 職員側)", "Levels over time (top: far party, bottom: staff side)"),
    "hold.add": ("保管延長する", "Place a hold"),
    "hold.until": ("期限 (空欄は解除まで)", "Until (empty: until released)"),
    "hold.release": ("延長解除", "Release"),
    "hold.ids": ("解除する延長の # (省略時はすべて)", "Holds # to release (empty: all)"),
    "holds.all": ("解除・期限切れも表示", "Show released and expired too"),
    "created": ("登録日時", "Created"),
    "created_by": ("登録者", "By"),
    "released": ("解除日時", "Released"),
    "request.open": ("開示請求を受け付ける", "Open a disclosure request"),
    "request.note": ("請求者の電話番号と期間で通話を探し、保管延長します (要綱第9条)。",
                     "Finds the requester's calls by number and period and holds them (要綱第9条)."),
    "request": ("開示請求", "Disclosure request"),
    "request.export": ("請求者への写しを作成", "Produce the requester's copy"),
    "request.close": ("終了する", "Close"),
    "opened": ("受付日時", "Opened"),
    "opened_by": ("受付者", "Opened by"),
    "req.open": ("処理中", "open"),
    "req.closed": ("終了", "closed"),
    "recipient": ("提供先", "Recipient"),
    "approver": ("承認者", "Approver"),
    "export.new": ("提供物を作成 (第三者提供)", "Create an export for a third party"),
    "export.note": ("提供先に要綱第8条第2項の遵守事項を示してください。提供は通話記録管理簿に記録されます。",
                    "The recipient is bound by 要綱第8条第2項; the export is on the ledger."),
    "export.create": ("作成", "Create"),
    "export.download": ("ダウンロード", "Download"),
    "export.others": ("他の職員が作成", "made by another staff member"),
    "call_ids": ("通話ID (空白区切り)", "Call ids (space separated)"),
    "actor": ("実施者", "Actor"),
    "ledger.verify": ("改ざん検査", "Chain check"),
    "ledger.ok": ("改ざんは検出されませんでした", "intact"),
    "ledger.bad": ("改ざんを検出", "TAMPERED"),
    "ledger.csv": ("CSV で書き出す", "Download CSV"),
    "ledger.head": ("先頭 (監査記録用)", "Head (note it for the next audit)"),
    "kind": ("区分", "Kind"),
    "at": ("日時", "Time"),
    "detail": ("詳細", "Detail"),
    "status.lines": ("回線", "Lines"),
    "status.storage": ("記憶領域", "Storage"),
    "status.retention": ("保管期間", "Retention"),
    "status.alarms": ("警報", "Alarms"),
    "status.free": ("空き容量", "Free"),
    "status.total": ("全容量", "Total"),
    "status.recordings": ("保管中の録音", "Recordings kept"),
    "status.oldest": ("最も古い記録", "Oldest record"),
    "status.due": ("次回の廃棄対象", "Due for erasure now"),
    "status.held": ("保管延長で保持", "Kept by holds"),
    "status.last_call": ("最後の通話", "Last call"),
    "status.no_alarm": ("警報はありません", "no alarm"),
    "alarm.ack": ("確認", "Acknowledge"),
    "alarm.acked": ("確認済", "acknowledged"),
    "alarm.note": ("確認内容", "Note"),
    "next": ("次へ", "Next"),
    "prev": ("前へ", "Previous"),
    "error": ("エラー", "Error"),
    "demo": ("デモ", "DEMO"),
    "none": ("なし", "none"),
    "submit": ("実行", "Submit"),
    "lang.other": ("English", "日本語"),
}

DIRECTION = {"in": ("着信", "incoming"), "out": ("発信", "outgoing")}


def translator(lang: str):
    i = 0 if lang != "en" else 1

    def t(key: str) -> str:
        pair = TEXT.get(key)
        return pair[i] if pair else key
    return t


def pick_lang(cookie: str | None, accept: str | None) -> str:
    if cookie in LANGS:
        return cookie
    return "ja"   # Japanese first, whatever the browser says: the city's working language
