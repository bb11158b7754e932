import hashlib, json, time
from tests.central.conftest import wait_for

def test_smoke(centre, make_site):
    token = centre.add_site("higashi", "東庁舎")
    site = make_site("higashi", "東庁舎")
    r = site.enrol(centre.url, token)
    print(r)
    run = site.run("demo.toml")
    assert run.wait(300) == 0, open(run.log_path).read()[-2000:]
    rep = site.replicate("--until-empty")
    assert rep.wait(120) == 0, open(rep.log_path).read()[-3000:]
    code, out = centre.staff("calls", "--json")
    assert code == 0
    calls = json.loads(out)
    print(json.dumps(calls, ensure_ascii=False)[:1500])
    with site.catalog() as c:
        rows = c.execute("select id, sha256, state from calls").fetchall()
    print(rows)
    assert len(calls) == len(rows)
