#!/usr/bin/env python3
"""The console in a real browser: Debian's headless Chromium driven by Selenium.

Run by ConsoleBrowserTests (Tests/SlipwaySystemTests) against a real cluster:
sign in, watch a submitted build appear and turn green without reloading, read
its log, press "Deploy build ... globally", watch every region converge, deploy
a second build, roll back, see a halted rollout's reason, abort it, and check
what a viewer sees. A screenshot of each page goes to the configured folder.

    console_browser.py CONFIG.json      (written by the Swift test)
"""
import json
import subprocess
import sys
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

config = json.load(open(sys.argv[1]))
base = config["base"]
shots = config["screenshots"]
service = config["service"]
per_region = config["machines_per_region"]
regions = config["regions"]

options = webdriver.ChromeOptions()
options.binary_location = config.get("chromium", "/usr/bin/chromium")
for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1000"):
    options.add_argument(flag)
driver = webdriver.Chrome(service=Service(config.get("chromedriver", "/usr/bin/chromedriver")), options=options)
step_number = 0


def step(name):
    print(f"--- {name}", flush=True)


def shot(name):
    global step_number
    step_number += 1
    driver.save_screenshot(f"{shots}/{step_number:02d}-{name}.png")


def wait_for(what, condition, timeout=90):
    try:
        # A live update may replace an element between finding and using it: that is a retry, not a failure.
        return WebDriverWait(driver, timeout, poll_frequency=0.25,
                             ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)).until(lambda _: condition())
    except Exception:
        raise AssertionError(f"timed out after {timeout}s waiting for {what} on {driver.current_url}")


def click(element_id, by=By.ID):
    """Clicks the element, again if a live update replaced it between finding and clicking."""
    def attempt():
        driver.find_element(by, element_id).click()
        return True
    wait_for(f"{element_id} to be clickable", attempt, timeout=20)


def api(path):
    request = urllib.request.Request(base + path, headers={"Authorization": "Bearer " + config["operator_token"]})
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.load(reply)


def submit(version):
    """Submits build `version` (the test's CLI command) and returns its job id at once."""
    out = subprocess.run(config["submit"][version], check=True, capture_output=True, text=True).stdout
    return json.loads(out)["job"]["id"]


def sign_in(name, password):
    driver.get(base + "/login")
    driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "sign-in").click()
    wait_for("the signed-in page", lambda: driver.find_elements(By.ID, "who"))


def confirm(expected_words):
    what = wait_for("a confirmation", lambda: driver.find_element(By.ID, "what"))
    for word in expected_words:
        assert word in what.text, f"the confirmation does not say '{word}': {what.text}"
    shot("confirm-" + driver.find_element(By.TAG_NAME, "h1").text.split()[0].lower())
    click("confirm")


def machines_on(digest, states=("running",)):
    """Whether every region's row shows all its machines on `digest`, each in one of `states`
    (a machine that rolled a failed build back runs the previous one as `rolled_back`)."""
    rows = driver.execute_script("""
        return Array.from(document.querySelectorAll('#machines tr[data-region]')).map(function (row) {
          return { region: row.dataset.region, builds: row.cells[2].innerHTML.split('<br>').map(function (part) {
            const cell = document.createElement('div'); cell.innerHTML = part;
            const badge = cell.querySelector('[data-status]'), link = cell.querySelector('a.digest');
            return { machines: parseInt(cell.textContent, 10), state: badge ? badge.dataset.status : '',
                     digest: link ? link.title.replace('sha256:', '') : '' };
          }) };
        });""")
    by_region = {row["region"]: row["builds"] for row in rows}
    return all(region in by_region
               and all(build["digest"] == digest and build["state"] in states for build in by_region[region])
               and sum(build["machines"] for build in by_region[region]) == per_region for region in regions)


def deploy_from_service_page(digest, plan):
    driver.get(f"{base}/services/{service}")
    form = driver.find_element(By.CSS_SELECTOR, "#service-actions form")
    form.find_element(By.NAME, "artifact").send_keys(digest[:16])
    form.find_element(By.NAME, "plan").send_keys(plan)
    form.find_element(By.TAG_NAME, "button").click()
    confirm(["every region", plan])


def built_and_deployable(version):
    """Submits `version`, waits until it is built and in every region; returns its digest."""
    job = submit(version)
    wait_for(f"{version} built", lambda: api(f"/api/v1/jobs/{job}")["job"]["status"] == "succeeded")
    digest = api(f"/api/v1/jobs/{job}")["job"]["artifact_digest"]
    wait_for(f"{version} deployable", lambda: api(f"/api/v1/artifacts/{digest}")["artifact"]["deployable"])
    return digest


try:
    step("sign-in page refuses a wrong password")
    driver.get(base + "/services")
    wait_for("the sign-in form", lambda: driver.find_elements(By.ID, "signin"))
    driver.find_element(By.ID, "name").send_keys(config["operator"][0])
    driver.find_element(By.ID, "password").send_keys("wrong password")
    driver.find_element(By.ID, "sign-in").click()
    assert "unknown user or wrong password" in wait_for("a refusal", lambda: driver.find_element(By.ID, "problem")).text
    shot("sign-in-refused")
    sign_in(*config["operator"])

    step("a submitted build appears and turns green without a reload")
    driver.get(base + "/builds")
    driver.execute_script("window.slipwayMarker = 'same page'")
    job = submit("v1")
    wait_for("the new job's row", lambda: driver.find_elements(By.CSS_SELECTOR, f'tr[data-job="{job}"]'))
    wait_for("the job to turn green", lambda: driver.find_elements(By.CSS_SELECTOR, f'tr[data-job="{job}"] [data-status="succeeded"]'))
    assert driver.execute_script("return window.slipwayMarker") == "same page", "the builds page reloaded instead of updating live"
    shot("builds")

    step("the job page streams its log")
    click(f'tr[data-job="{job}"] a', By.CSS_SELECTOR)
    wait_for("the log", lambda: "building v1" in driver.find_element(By.ID, "log").text)
    shot("job-log")
    v1 = wait_for("the digest", lambda: driver.find_element(By.CSS_SELECTOR, "#job-summary a.digest").get_attribute("title")).removeprefix("sha256:")

    step("Deploy build globally, from the artifact page")
    click("#job-summary a.digest", By.CSS_SELECTOR)
    wait_for("the deploy button (once every region holds the build)", lambda: driver.find_element(By.ID, "deploy-globally"))
    shot("artifact")

    def press_deploy():
        # Typing marks the form's section busy, so live updates leave it alone from then on.
        plan = driver.find_element(By.CSS_SELECTOR, "#deploy-form [name=plan]")
        plan.clear()
        plan.send_keys("all")
        new_service = driver.find_element(By.CSS_SELECTOR, "#deploy-form [name=new_service]")
        if not new_service.is_selected():
            new_service.click()
        button = driver.find_element(By.ID, "deploy-globally")
        assert "globally" in button.text, button.text
        button.click()
        return True
    wait_for("the deploy form", press_deploy, timeout=20)
    confirm(["every region", "all"])
    wait_for("the deploy notice", lambda: "Deploy started" in driver.find_element(By.ID, "notice").text)
    wait_for("every region's machines on v1", lambda: machines_on(v1))
    shot("service-v1")

    step("a second build, deployed from the service page")
    v2 = built_and_deployable("v2")
    deploy_from_service_page(v2, "all")
    wait_for("every region's machines on v2", lambda: machines_on(v2))
    shot("service-v2")

    step("roll back")
    click("rollback")
    confirm(["back to the build its last change replaced"])
    wait_for("the rollback notice", lambda: "Rolled back" in driver.find_element(By.ID, "notice").text)
    wait_for("every region's machines back on v1", lambda: machines_on(v1))
    shot("rolled-back")

    step("a broken build halts at its canary; the page shows why")
    deploy_from_service_page(built_and_deployable("v3"), config["halting_plan"])
    reason = wait_for("the halted rollout's reason",
                      lambda: driver.find_element(By.CSS_SELECTOR, '#rollout[data-state="halted"] #rollout-reason'))
    assert reason.text, "a halted rollout shows no reason"
    print("    halted:", reason.text, flush=True)
    shot("halted")
    click("rollout-abort")
    confirm(["Abort"])
    wait_for("the rollout aborted", lambda: driver.find_elements(By.CSS_SELECTOR, '#rollout[data-state="aborted"]'))
    wait_for("every region's machines on v1 again", lambda: machines_on(v1, ("running", "rolled_back")))
    shot("aborted")

    step("the audit log names the console's key for every action")
    driver.get(base + "/audit?since=1h")
    assert "operator/console" in wait_for("the audit table", lambda: driver.find_element(By.ID, "audit")).text
    shot("audit")

    step("a viewer sees everything and can press nothing")
    click("sign-out")
    sign_in(*config["viewer"])
    driver.get(f"{base}/services/{service}")
    assert not driver.find_elements(By.ID, "rollback") and not driver.find_elements(By.ID, "service-actions")
    shot("viewer")
    driver.get(f"{base}/deploy?service={service}&artifact={v2}")
    assert "operator role" in driver.find_element(By.ID, "problem").text
    print("browser test passed", flush=True)
except Exception:
    shot("failure")
    with open(f"{shots}/failure.html", "w") as page:
        page.write(driver.page_source)
    raise
finally:
    driver.quit()
