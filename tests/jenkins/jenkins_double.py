"""A Jenkins double for the goex-jenkins tests (docs/jenkins.md): the parts of the Jenkins REST API
the client uses, enforcing what Jenkins enforces. No Jenkins runs on these machines; the client's
tests also run against a real one when JENKINS_URL is set.

    python3 jenkins_double.py --port 0 --user U --token T [--password P] [--crumb-ttl SECONDS]
        [--no-csrf] [--prefix /jenkins] [--queue-delay 0.3] [--build-duration 1.0]
        [--left-ttl 300] [--seed-job go-test ...] [--exit-on-stdin-eof]

Prints `LISTENING <port>` once it serves on 127.0.0.1. Python 3 standard library only.

What it enforces, as Jenkins does:

- Every request needs basic auth as --user with --token (or --password): else 401 with
  `WWW-Authenticate: Basic realm="Jenkins"`. (Jenkins answers a request without credentials 403
  when anonymous users may not read; the double answers 401 for both.)
- Every POST needs a valid CSRF crumb, in the `Jenkins-Crumb` header or form field: else 403 with
  Jetty's page "No valid crumb was included in the request". `GET /crumbIssuer/api/json` issues
  the crumb of the caller's web session, opening one (a `JSESSIONID.<hex>` cookie) when the
  request carries none that is live; a crumb is valid only with the session cookie it was issued
  for. --crumb-ttl ends each session (and so its crumb) that many seconds after it opened, as a
  session timeout or a restart does. Stricter than Jenkins >= 2.96, which lets API-token requests
  through without a crumb: the strict case is the one a password-configured client meets.
  --no-csrf turns CSRF protection off: the crumb issuer answers 404 and POSTs need no crumb.
- Names are checked as `Jenkins.checkGoodName` does; `createItem` of a taken name is 400 with
  `X-Error: A job already exists with the name ‘x’` (every createItem refusal carries X-Error).

What it keeps (in memory): folders (`com.cloudbees.hudson.plugins.folder.Folder`) and jobs,
nested; each item's config.xml; the queue; builds and their console.

- `POST [/job/F]/createItem?name=X` with an `application/xml` (or text/xml) body: a job from its
  config.xml (`<project>` freestyle, `<flow-definition>` pipeline, or a folder's XML); 200.
  With `mode=com.cloudbees.hudson.plugins.folder.Folder` (form or query; the UI's
  `from=`, `json=`, `Submit=` are accepted): a folder; with `mode=copy&from=NAME`: a copy, held
  back from building until its config.xml is saved once (as Jenkins does); 302 to the new item.
- `GET|POST /job/.../config.xml`, `POST .../doRename?newName=Y` (302; "The name “Y” is already in
  use." when taken), `POST .../doDelete` (302).
- `POST .../build` (a job without parameters) and `POST .../buildWithParameters` (a job with
  some; parameters it does not define are dropped, as Jenkins does): 201 with
  `Location: http://127.0.0.1:PORT/queue/item/N/`. An identical request for a job already waiting
  gets the waiting item. 400 for the wrong one of the two; 409 for a job that is disabled or held
  back. `delay=Nsec` or the job's `<quietPeriod>` keep the item waiting that long, else it waits
  --queue-delay (0.3 s) for an executor; then it leaves the queue as a build.
- `GET /queue/api/json` (waiting items), `GET /queue/item/N/api/json` (waiting, or left less than
  --left-ttl seconds ago: `Queue$LeftItem` with `executable` or `cancelled`),
  `POST /queue/cancelItem?id=N` (204; 404 "Provided id (N) not found"; 500 "Could not cancel run
  for id N" once it left), as Jenkins 2.2xx+ answers.
- A build runs --build-duration seconds (or its `duration` parameter, when the job defines one);
  its console grows line by line meanwhile. Its result is its `result` parameter when the job
  defines one (SUCCESS, FAILURE, UNSTABLE, ABORTED), FAILURE when a shell step of the config runs
  `exit N` (N > 0), else SUCCESS. `log_lines` (a parameter, default 5) sets how many progress lines
  it prints.
- `GET /job/.../N/api/json` (and `lastBuild`, `lastSuccessfulBuild`, `lastFailedBuild`,
  `lastCompletedBuild`: 404 when there is none), `GET .../N/logText/progressiveText?start=K`
  (the UTF-8 text from byte K, `X-Text-Size` the next offset, `X-More-Data: true` while building),
  `GET .../N/consoleText`.
- `GET /api/json` (the root: `jobs`, `views`, `useCrumbs`, ...; `X-Jenkins` on every answer),
  `GET /computer/api/json` and `/computer/(built-in)/api/json`, `GET /view/all/api/json`,
  `GET /pluginManager/api/json` (cloudbees-folder, git, workflow-aggregator).
- `tree=` is honoured on the JSON answers (`jobs[name,url]`, `builds[number,queueId]`; ranges
  `{m,n}` ignored).
- --prefix serves everything under a path, as Jenkins behind `--prefix=/jenkins`.

Test hooks:

- `--seed-job NAME` (repeatable): a freestyle job NAME with the original's job.xml (a string
  parameter `params1`, default `defaultVal`, and a shell step `echo hello go_example`) and one
  finished build, #1, SUCCESS, whose console is exactly SEED_CONSOLE below with NAME and --user
  filled in.
- `GET /_double/stats` (no auth, no prefix needed): counters, as JSON: `requests`,
  `unauthorized`, `crumbs_issued`, `sessions_opened`, `posts`, `posts_refused_for_crumb`,
  `builds_queued`, `builds_started`.
- `--exit-on-stdin-eof`: exit when standard input closes (the test that spawned it died).
"""

import argparse
import base64
import hashlib
import hmac
import http.cookies
import json
import os
import re
import secrets
import sys
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = "2.462.3"
FOLDER = "com.cloudbees.hudson.plugins.folder.Folder"
FREESTYLE = "hudson.model.FreeStyleProject"
PIPELINE = "org.jenkinsci.plugins.workflow.job.WorkflowJob"
BUILD_CLASS = {FREESTYLE: "hudson.model.FreeStyleBuild", PIPELINE: "org.jenkinsci.plugins.workflow.job.WorkflowRun"}
XML_ROOTS = {"project": FREESTYLE, "flow-definition": PIPELINE, FOLDER: FOLDER}
UNSAFE = "?*/\\%!@#$^&|<>[]:;"
RESULTS = {"SUCCESS", "FAILURE", "UNSTABLE", "ABORTED", "NOT_BUILT"}
COLORS = {"SUCCESS": "blue", "FAILURE": "red", "UNSTABLE": "yellow", "ABORTED": "aborted", "NOT_BUILT": "notbuilt"}

SEED_CONFIG = """<?xml version='1.1' encoding='UTF-8'?>
<project>
  <description>go_example test job</description>
  <keepDependencies>false</keepDependencies>
  <properties>
    <hudson.model.ParametersDefinitionProperty>
      <parameterDefinitions>
        <hudson.model.StringParameterDefinition>
          <name>params1</name>
          <description>a string parameter</description>
          <defaultValue>defaultVal</defaultValue>
          <trim>false</trim>
        </hudson.model.StringParameterDefinition>
      </parameterDefinitions>
    </hudson.model.ParametersDefinitionProperty>
  </properties>
  <scm class="hudson.scm.NullSCM"/>
  <canRoam>true</canRoam>
  <disabled>false</disabled>
  <builders>
    <hudson.tasks.Shell>
      <command>echo hello go_example</command>
    </hudson.tasks.Shell>
  </builders>
  <publishers/>
  <buildWrappers/>
</project>
"""

SEED_CONSOLE = """Started by user {user}
Running as SYSTEM
Building in workspace /var/jenkins_home/workspace/{name}
[{name}] $ /bin/sh -xe /tmp/jenkins1.sh
+ echo hello go_example
hello go_example
Finished: SUCCESS
"""

CRUMB_PAGE = """<html>
<head>
<meta http-equiv="Content-Type" content="text/html;charset=utf-8"/>
<title>Error 403 No valid crumb was included in the request</title>
</head>
<body><h2>HTTP ERROR 403 No valid crumb was included in the request</h2>
<table>
<tr><th>URI:</th><td>{uri}</td></tr>
<tr><th>STATUS:</th><td>403</td></tr>
<tr><th>MESSAGE:</th><td>No valid crumb was included in the request</td></tr>
<tr><th>SERVLET:</th><td>Stapler</td></tr>
</table>
<hr/><a href="https://eclipse.org/jetty">Powered by Jetty:// 10.0.20</a><hr/>
</body>
</html>
"""

ERROR_PAGE = """<!DOCTYPE html><html><head><title>Error [Jenkins]</title>
<script src="/static/adjuncts/jquery.js"></script></head><body>
<header id="page-header"><a href="/">Jenkins</a></header>
<div id="main-panel"><h1>Error</h1><p>{message}</p></div></body></html>
"""

JETTY_PAGE = """<html><head><meta http-equiv="Content-Type" content="text/html;charset=utf-8"/>
<title>Error {status} {message}</title></head><body><h2>HTTP ERROR {status} {message}</h2>
<table><tr><th>URI:</th><td>{uri}</td></tr><tr><th>STATUS:</th><td>{status}</td></tr></table></body></html>
"""


def now_ms():
    return int(time.time() * 1000)


class Reply(Exception):
    """An answer decided deep in a handler: status, body, headers."""

    def __init__(self, status, body=b"", content_type="text/html;charset=utf-8", headers=None):
        super().__init__(status)
        self.status = status
        self.body = body.encode() if isinstance(body, str) else body
        self.content_type = content_type
        self.headers = headers or {}


def failure(message, x_error=False):
    """Jenkins's `Failure`: 400 with its error page (and X-Error, as createItem sends)."""
    headers = {"X-Error": message} if x_error else {}
    return Reply(400, ERROR_PAGE.format(message=html_escape(message)), headers=headers)


def jetty_error(status, message, uri):
    return Reply(status, JETTY_PAGE.format(status=status, message=html_escape(message), uri=html_escape(uri)))


def html_escape(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def check_good_name(name):
    """`Jenkins.checkGoodName`."""
    name = (name or "").strip()
    if not name:
        raise failure("No name is specified", x_error=True)
    for c in name:
        if c in UNSAFE:
            raise failure(f"‘{c}’ is an unsafe character", x_error=True)
    if name in (".", ".."):
        raise failure(f"“{name}” is not an allowed name", x_error=True)
    return name


# ---- tree= ----------------------------------------------------------------------------------

def parse_tree(spec):
    """`a,b[c,d{0,5}],e` → {"a": None, "b": {"c": None, "d": None}, "e": None}."""
    spec = re.sub(r"\{[^}]*\}", "", spec)
    pos = 0

    def parse_list():
        nonlocal pos
        fields = {}
        while pos < len(spec):
            m = re.match(r"[A-Za-z0-9_$]+", spec[pos:])
            if not m:
                break
            name = m.group(0)
            pos += len(name)
            sub = None
            if pos < len(spec) and spec[pos] == "[":
                pos += 1
                sub = parse_list()
                if pos < len(spec) and spec[pos] == "]":
                    pos += 1
            fields[name] = sub
            if pos < len(spec) and spec[pos] == ",":
                pos += 1
                continue
            break
        return fields

    return parse_list()


def apply_tree(value, tree):
    if tree is None:
        return value
    if isinstance(value, list):
        return [apply_tree(v, tree) for v in value]
    if isinstance(value, dict):
        out = {}
        if "_class" in value:
            out["_class"] = value["_class"]
        for key, sub in tree.items():
            if key in value:
                out[key] = apply_tree(value[key], sub)
        return out
    return value


# ---- the model ------------------------------------------------------------------------------

class Item:
    def __init__(self, name, parent, cls, config):
        self.name = name
        self.parent = parent
        self.cls = cls
        self.config = config

    def names(self):
        names, item = [], self
        while item.parent is not None:
            names.append(item.name)
            item = item.parent
        return list(reversed(names))

    def full_name(self):
        return "/".join(self.names())

    def url_path(self):
        return "".join(f"job/{urllib.parse.quote(n, safe='')}/" for n in self.names())


class Folder(Item):
    def __init__(self, name, parent, config=None):
        super().__init__(name, parent, FOLDER, config or folder_config())
        self.items = {}
        self.description = None
        self.apply_config()

    def apply_config(self):
        root = ET.fromstring(self.config)
        self.description = root.findtext("description")


def folder_config(description=""):
    return f"""<?xml version='1.1' encoding='UTF-8'?>
<{FOLDER} plugin="cloudbees-folder@6.928.v7c780211d66e">
  <description>{description}</description>
  <properties/>
  <folderViews class="com.cloudbees.hudson.plugins.folder.views.DefaultFolderViewHolder"/>
  <healthMetrics/>
  <icon class="com.cloudbees.hudson.plugins.folder.icons.StockFolderIcon"/>
</{FOLDER}>
"""


def empty_project_config():
    return """<?xml version='1.1' encoding='UTF-8'?>
<project>
  <description></description>
  <keepDependencies>false</keepDependencies>
  <properties/>
  <scm class="hudson.scm.NullSCM"/>
  <canRoam>true</canRoam>
  <disabled>false</disabled>
  <builders/>
  <publishers/>
  <buildWrappers/>
</project>
"""


class Job(Item):
    def __init__(self, name, parent, cls, config):
        super().__init__(name, parent, cls, config)
        self.builds = {}
        self.next_build = 1
        self.hold_off = False
        self.apply_config()

    def apply_config(self):
        root = ET.fromstring(self.config)
        self.description = root.findtext("description")
        self.disabled = (root.findtext("disabled") or "false").strip() == "true"
        quiet = root.findtext("quietPeriod")
        self.quiet_period = float(quiet) if quiet and quiet.strip() else None
        self.params = []
        for definitions in root.iter("parameterDefinitions"):
            for d in definitions:
                kind = d.tag.rsplit(".", 1)[-1]
                name = d.findtext("name") or ""
                default = d.findtext("defaultValue")
                if kind == "BooleanParameterDefinition":
                    default = (default or "false").strip() == "true"
                elif kind == "ChoiceParameterDefinition":
                    choices = [c.text or "" for c in d.iter("string")]
                    default = choices[0] if choices else ""
                self.params.append({"name": name, "kind": kind, "default": default if default is not None else "",
                                    "description": d.findtext("description")})
        self.commands = [c.text or "" for c in root.iter("command")]

    def buildable(self):
        return not self.disabled and not self.hold_off


class Build:
    def __init__(self, job, number, queue_id, params, started, duration, result, log_lines, user):
        self.job = job
        self.number = number
        self.queue_id = queue_id
        self.params = params
        self.started = started
        self.duration = duration
        self.final_result = result
        self.user = user
        full = job.full_name()
        self.head = [f"Started by user {user}", "Running as SYSTEM",
                     f"Building in workspace /var/jenkins_home/workspace/{full}"]
        body = []
        for i, command in enumerate(job.commands, 1):
            body.append(f"[{job.name}] $ /bin/sh -xe /tmp/jenkins{i}.sh")
            for line in command.strip().splitlines():
                body.append(f"+ {line.strip()}")
                if line.strip().startswith("echo "):
                    body.append(line.strip()[5:])
        body += [f"progress {i}/{log_lines}" for i in range(1, log_lines + 1)]
        if result == "FAILURE" and any(re.search(r"\bexit\s+[1-9]", c) for c in job.commands):
            body.append("Build step 'Execute shell' marked build as failure")
        self.body = body

    def done(self, now):
        return now >= self.started + self.duration

    def result(self, now):
        return self.final_result if self.done(now) else None

    def console(self, now):
        if self.done(now):
            lines = self.head + self.body + [f"Finished: {self.final_result}"]
        else:
            shown = int(len(self.body) * max(0.0, now - self.started) / self.duration) if self.duration else 0
            lines = self.head + self.body[:shown]
        return ("\n".join(lines) + "\n").encode()


class QueueItem:
    def __init__(self, qid, job, params, since, ready_at, user):
        self.id = qid
        self.job = job
        self.params = params
        self.since = since
        self.ready_at = ready_at
        self.user = user
        self.cancelled = False
        self.build = None
        self.left_at = None


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.RLock()
        self.root = Folder("", None)
        self.queue = {}
        self.next_queue_id = 1
        self.sessions = {}
        self.session_cookie = "JSESSIONID." + secrets.token_hex(4)
        self.crumb_salt = secrets.token_bytes(16)
        self.stats = {k: 0 for k in ("requests", "unauthorized", "crumbs_issued", "sessions_opened", "posts",
                                     "posts_refused_for_crumb", "builds_queued", "builds_started")}
        self.base = None  # set once the port is known

    # Queue items leave the queue, and builds start, when their time comes; computed on each
    # request (every observation is one), so no thread is needed.
    def advance(self, now):
        for item in list(self.queue.values()):
            if item.left_at is None and not item.cancelled and now >= item.ready_at:
                job = item.job
                if job.parent is None or job.name not in job.parent.items or job.parent.items[job.name] is not job:
                    item.cancelled, item.left_at = True, now
                    continue
                values = dict(item.params)
                result = str(values.get("result", "")).upper()
                if result not in RESULTS:
                    failing = any(re.search(r"\bexit\s+[1-9]", c) for c in job.commands)
                    result = "FAILURE" if failing else "SUCCESS"
                duration = float(values.get("duration", self.args.build_duration) or 0)
                log_lines = int(values.get("log_lines", 5) or 0)
                number = job.next_build
                job.next_build += 1
                job.builds[number] = Build(job, number, item.id, item.params, item.ready_at, duration, result,
                                           log_lines, item.user)
                item.build = number
                item.left_at = item.ready_at
                self.stats["builds_started"] += 1
            if item.left_at is not None and now - item.left_at > self.args.left_ttl:
                del self.queue[item.id]

    def seed(self, name, user):
        job = Job(name, self.root, FREESTYLE, SEED_CONFIG)
        job.commands = ["echo hello go_example"]
        self.root.items[name] = job
        started = time.time() - 10
        build = Build(job, 1, 0, [("params1", "defaultVal")], started, 1.0, "SUCCESS", 0, user)
        job.builds[1] = build
        job.next_build = 2
        assert build.console(time.time()).decode() == SEED_CONSOLE.format(user=user, name=name)

    # ---- JSON of the model ----

    def url(self, path=""):
        return f"{self.base}/{path}"

    def summary(self, item, now, full=False):
        """An item as its parent lists it. Jenkins lists name, url, color and _class unless a
        `tree=` asks for more, which it then serves from the whole item (`full`)."""
        if full:
            return self.job_json(item, now, False) if isinstance(item, Job) else self.folder_json(item, now)
        out = {"_class": item.cls, "name": item.name, "url": self.url(item.url_path())}
        if isinstance(item, Job):
            out["color"] = self.color(item, now)
        return out

    def color(self, job, now):
        if job.disabled:
            return "disabled"
        if not job.builds:
            return "notbuilt"
        last = job.builds[max(job.builds)]
        done = [b for b in job.builds.values() if b.done(now)]
        base = COLORS[max(done, key=lambda b: b.number).final_result] if done else "notbuilt"
        return base if last.done(now) else base + "_anime"

    def build_ref(self, build, now, deep):
        if build is None:
            return None
        if deep:
            return self.build_json(build, now)
        return {"_class": BUILD_CLASS.get(build.job.cls, "hudson.model.FreeStyleBuild"), "number": build.number,
                "url": self.url(f"{build.job.url_path()}{build.number}/")}

    def permalink(self, job, which, now):
        builds = sorted(job.builds.values(), key=lambda b: b.number, reverse=True)
        pick = {
            "lastBuild": lambda b: True,
            "lastCompletedBuild": lambda b: b.done(now),
            "lastSuccessfulBuild": lambda b: b.result(now) in ("SUCCESS", "UNSTABLE"),
            "lastStableBuild": lambda b: b.result(now) == "SUCCESS",
            "lastFailedBuild": lambda b: b.result(now) == "FAILURE",
            "lastUnstableBuild": lambda b: b.result(now) == "UNSTABLE",
            "lastUnsuccessfulBuild": lambda b: b.done(now) and b.result(now) != "SUCCESS",
            "firstBuild": None,
        }[which]
        if pick is None:
            return builds[-1] if builds else None
        return next((b for b in builds if pick(b)), None)

    def job_json(self, job, now, deep):
        builds = sorted(job.builds.values(), key=lambda b: b.number, reverse=True)
        waiting = [q for q in self.queue.values() if q.job is job and q.left_at is None and not q.cancelled]
        out = {
            "_class": job.cls, "actions": [], "description": job.description, "displayName": job.name,
            "displayNameOrNull": None, "fullDisplayName": " » ".join(job.names()), "fullName": job.full_name(),
            "name": job.name, "url": self.url(job.url_path()), "buildable": job.buildable(),
            "builds": [self.build_ref(b, now, deep) for b in builds[:100]], "color": self.color(job, now),
            "healthReport": [], "inQueue": bool(waiting), "keepDependencies": False,
            "nextBuildNumber": job.next_build, "concurrentBuild": False, "disabled": job.disabled,
            "queueItem": self.queue_json(waiting[0], now) if waiting else None,
            "property": [],
        }
        for which in ("firstBuild", "lastBuild", "lastCompletedBuild", "lastFailedBuild", "lastStableBuild",
                      "lastSuccessfulBuild", "lastUnstableBuild", "lastUnsuccessfulBuild"):
            out[which] = self.build_ref(self.permalink(job, which, now), now, deep)
        if job.params:
            out["property"].append({
                "_class": "hudson.model.ParametersDefinitionProperty",
                "parameterDefinitions": [{
                    "_class": f"hudson.model.{p['kind']}",
                    "defaultParameterValue": {"_class": f"hudson.model.{p['kind'].replace('Definition', 'Value')}",
                                              "name": p["name"], "value": p["default"]},
                    "description": p["description"], "name": p["name"], "type": p["kind"],
                } for p in job.params],
            })
        return out

    def folder_json(self, folder, now):
        return {
            "_class": FOLDER, "actions": [], "description": folder.description, "displayName": folder.name,
            "displayNameOrNull": None, "fullDisplayName": " » ".join(folder.names()),
            "fullName": folder.full_name(), "name": folder.name, "url": self.url(folder.url_path()),
            "healthReport": [], "jobs": [self.summary(i, now) for i in folder.items.values()],
            "primaryView": {"_class": "hudson.model.AllView", "name": "All", "url": self.url(folder.url_path())},
            "views": [{"_class": "hudson.model.AllView", "name": "All", "url": self.url(folder.url_path())}],
        }

    def build_json(self, build, now):
        job = build.job
        done = build.done(now)
        return {
            "_class": BUILD_CLASS.get(job.cls, "hudson.model.FreeStyleBuild"),
            "actions": [
                {"_class": "hudson.model.ParametersAction",
                 "parameters": [{"_class": "hudson.model.StringParameterValue", "name": k, "value": v}
                                for k, v in build.params]},
                {"_class": "hudson.model.CauseAction",
                 "causes": [{"_class": "hudson.model.Cause$UserIdCause",
                             "shortDescription": f"Started by user {build.user}", "userId": build.user}]},
            ],
            "artifacts": [], "building": not done, "description": None, "displayName": f"#{build.number}",
            "duration": int(build.duration * 1000) if done else 0, "estimatedDuration": int(build.duration * 1000),
            "executor": None if done else {"_class": "hudson.model.OneOffExecutor"},
            "fullDisplayName": " » ".join(job.names()) + f" #{build.number}", "id": str(build.number),
            "keepLog": False, "number": build.number, "queueId": build.queue_id, "result": build.result(now),
            "timestamp": int(build.started * 1000), "url": self.url(f"{job.url_path()}{build.number}/"),
            "builtOn": "", "changeSet": {"_class": "hudson.scm.EmptyChangeLogSet", "items": [], "kind": None},
        }

    def queue_json(self, item, now):
        job = item.job
        out = {
            "actions": [{"_class": "hudson.model.CauseAction",
                         "causes": [{"_class": "hudson.model.Cause$UserIdCause",
                                     "shortDescription": f"Started by user {item.user}", "userId": item.user}]}],
            "blocked": False, "buildable": False, "id": item.id, "inQueueSince": int(item.since * 1000),
            "params": "".join(f"\n{k}={v}" for k, v in item.params), "stuck": False,
            "task": {"_class": job.cls, "name": job.name, "url": self.url(job.url_path()),
                     "color": self.color(job, now)},
            "url": f"queue/item/{item.id}/",
        }
        if item.left_at is None:
            out["_class"] = "hudson.model.Queue$WaitingItem"
            out["why"] = f"In the quiet period. Expires in {max(0.0, item.ready_at - now):.2f} sec"
            out["timestamp"] = int(item.ready_at * 1000)
        else:
            out["_class"] = "hudson.model.Queue$LeftItem"
            out["why"] = None
            out["cancelled"] = item.cancelled
            out["executable"] = None if item.build is None else self.build_ref(job.builds[item.build], now, False)
        return out

    def root_json(self, now, full=False):
        all_view = {"_class": "hudson.model.AllView", "name": "all", "url": self.url()}
        return {
            "_class": "hudson.model.Hudson", "assignedLabels": [{"name": "built-in"}], "mode": "NORMAL",
            "nodeDescription": "the Jenkins controller's built-in node", "nodeName": "", "numExecutors": 2,
            "description": None, "jobs": [self.summary(i, now, full) for i in self.root.items.values()],
            "overallLoad": {}, "primaryView": all_view, "quietDownReason": None, "quietingDown": False,
            "slaveAgentPort": -1, "unlabeledLoad": {"_class": "jenkins.model.UnlabeledLoadStatistics"},
            "url": self.url(), "useCrumbs": not self.args.no_csrf, "useSecurity": True, "views": [all_view],
        }

    def computer_json(self):
        return {
            "_class": "hudson.model.Hudson$MasterComputer", "actions": [], "assignedLabels": [{"name": "built-in"}],
            "description": "the Jenkins controller's built-in node", "displayName": "Built-In Node",
            "executors": [{}, {}], "icon": "symbol-computer", "idle": True, "jnlpAgent": False,
            "launchSupported": True, "manualLaunchAllowed": True, "numExecutors": 2, "offline": False,
            "offlineCause": None, "offlineCauseReason": "", "oneOffExecutors": [], "temporarilyOffline": False,
        }


PLUGINS = [
    {"active": True, "backupVersion": None, "bundled": False, "deleted": False, "dependencies": [],
     "downgradable": False, "enabled": True, "hasUpdate": False, "longName": "Folders Plugin", "pinned": False,
     "requiredCoreVersion": "2.440.3", "shortName": "cloudbees-folder", "supportsDynamicLoad": "MAYBE",
     "url": "https://plugins.jenkins.io/cloudbees-folder", "version": "6.928.v7c780211d66e"},
    {"active": True, "backupVersion": None, "bundled": False, "deleted": False, "dependencies": [],
     "downgradable": False, "enabled": True, "hasUpdate": True, "longName": "Git plugin", "pinned": False,
     "requiredCoreVersion": "2.426.3", "shortName": "git", "supportsDynamicLoad": "MAYBE",
     "url": "https://plugins.jenkins.io/git/", "version": "5.2.2"},
    {"active": True, "backupVersion": None, "bundled": False, "deleted": False, "dependencies": [],
     "downgradable": False, "enabled": True, "hasUpdate": False, "longName": "Pipeline", "pinned": False,
     "requiredCoreVersion": "2.361.1", "shortName": "workflow-aggregator", "supportsDynamicLoad": "MAYBE",
     "url": "https://plugins.jenkins.io/workflow-aggregator/", "version": "600.vb_57cdd26fdd7"},
]


def parse_config(xml_text):
    """The item class a config.xml makes, or a 400/500 as Jenkins answers a bad one."""
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as e:
        raise Reply(500, ERROR_PAGE.format(message=html_escape(f"java.io.IOException: Unable to read: {e}")))
    cls = XML_ROOTS.get(root.tag)
    if cls is None:
        raise Reply(500, ERROR_PAGE.format(message=html_escape(f"Unable to read: unknown item type {root.tag}")))
    return cls


def new_item(name, parent, cls, config):
    return Folder(name, parent, config) if cls == FOLDER else Job(name, parent, cls, config)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # No Nagle: headers and body go out as separate writes, and a delayed ACK would hold each
    # answer ~40 ms.
    disable_nagle_algorithm = True
    server_version = "Jetty(10.0.20)"

    def version_string(self):
        return self.server_version

    def log_message(self, fmt, *args):
        if self.server.state.args.verbose:
            sys.stderr.write("%s - %s\n" % (self.address_string(), fmt % args))

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def handle_any(self, method):
        state = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        cookies = []
        try:
            reply = self.route(state, method, body, cookies)
        except Reply as r:
            reply = r
        headers = {"X-Jenkins": VERSION, "X-Content-Type-Options": "nosniff", **reply.headers}
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in headers.items():
                # Header values go out as UTF-8 bytes (http.server would refuse non-Latin-1).
                self.send_header(name, str(value).encode("utf-8").decode("latin-1"))
            for cookie in cookies:
                self.send_header("Set-Cookie", cookie)
            self.end_headers()
            self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # ---- auth, session, crumb ----

    def authenticated_user(self, state):
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            try:
                user, _, secret = base64.b64decode(auth[6:]).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                user, secret = "", ""
            accepted = [state.args.token] + ([state.args.password] if state.args.password else [])
            if user == state.args.user and any(hmac.compare_digest(secret, a) for a in accepted):
                return user
        state.stats["unauthorized"] += 1
        who = user if auth.startswith("Basic ") else "anonymous"
        raise Reply(401, JETTY_PAGE.format(status=401, message=html_escape(f"Invalid password/token for user: {who}"),
                                           uri=html_escape(self.path)),
                    headers={"WWW-Authenticate": 'Basic realm="Jenkins"'})

    def session(self, state, now):
        jar = http.cookies.SimpleCookie()
        try:
            jar.load(self.headers.get("Cookie", ""))
        except http.cookies.CookieError:
            return None
        morsel = jar.get(state.session_cookie)
        if morsel is None:
            return None
        expires = state.sessions.get(morsel.value)
        if expires is None or (expires is not True and now >= expires):
            state.sessions.pop(morsel.value, None)
            return None
        return morsel.value

    def crumb_of(self, state, session, user):
        return hmac.new(state.crumb_salt, f"{user};{session}".encode(), hashlib.sha256).hexdigest()

    def check_crumb(self, state, user, form, now, uri):
        if state.args.no_csrf:
            return
        session = self.session(state, now)
        sent = self.headers.get("Jenkins-Crumb") or (form.get("Jenkins-Crumb") or [None])[0]
        if session is not None and sent is not None and hmac.compare_digest(sent, self.crumb_of(state, session, user)):
            return
        state.stats["posts_refused_for_crumb"] += 1
        raise Reply(403, CRUMB_PAGE.format(uri=html_escape(uri)))

    # ---- routing ----

    def route(self, state, method, body, cookies):
        split = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(split.query, keep_blank_values=True)
        path = split.path
        with state.lock:
            now = time.time()
            if path == "/_double/stats" or path == state.args.prefix + "/_double/stats":
                return Reply(200, json.dumps(state.stats), "application/json;charset=utf-8")
            state.stats["requests"] += 1
            prefix = state.args.prefix
            if prefix:
                if path != prefix and not path.startswith(prefix + "/"):
                    raise jetty_error(404, "Not Found", path)
                path = path[len(prefix):] or "/"
            user = self.authenticated_user(state)
            state.advance(now)
            form = dict(query)
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if method == "POST":
                state.stats["posts"] += 1
                if content_type == "application/x-www-form-urlencoded":
                    for k, v in urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items():
                        form.setdefault(k, []).extend(v)
                self.check_crumb(state, user, form, now, split.path)
            segments = [urllib.parse.unquote(s) for s in path.split("/")]
            segments = [s for s in segments if s != ""]
            return self.dispatch(state, method, segments, form, body, content_type, user, now, cookies, split.path)

    def dispatch(self, state, method, segs, form, body, content_type, user, now, cookies, uri):
        def param(name, default=None):
            values = form.get(name)
            return values[0] if values else default

        tree = param("tree")

        def json_reply(value):
            if tree:
                value = apply_tree(value, parse_tree(tree))
            return Reply(200, json.dumps(value), "application/json;charset=utf-8")

        not_found = jetty_error(404, "Not Found", uri)

        # Walk /job/a/job/b/...
        item = state.root
        while len(segs) >= 2 and segs[0] == "job":
            if not isinstance(item, Folder) or segs[1] not in item.items:
                raise not_found
            item = item.items[segs[1]]
            segs = segs[2:]
        rest = segs

        if item is state.root:
            if rest == ["api", "json"] and method == "GET":
                return json_reply(state.root_json(now, full=bool(tree)))
            if rest == ["crumbIssuer", "api", "json"] and method == "GET":
                if state.args.no_csrf:
                    raise not_found
                session = self.session(state, now)
                if session is None:
                    session = secrets.token_urlsafe(18)
                    ttl = state.args.crumb_ttl
                    state.sessions[session] = (now + ttl) if ttl else True
                    state.stats["sessions_opened"] += 1
                    cookies.append(f"{state.session_cookie}={session}; Path={state.args.prefix or '/'}; HttpOnly")
                state.stats["crumbs_issued"] += 1
                return json_reply({"_class": "hudson.security.csrf.DefaultCrumbIssuer",
                                   "crumb": self.crumb_of(state, session, user), "crumbRequestField": "Jenkins-Crumb"})
            if rest == ["queue", "api", "json"] and method == "GET":
                waiting = [state.queue_json(q, now) for q in sorted(state.queue.values(), key=lambda q: q.id)
                           if q.left_at is None]
                return json_reply({"_class": "hudson.model.Queue", "discoverableItems": [], "items": waiting})
            if len(rest) == 5 and rest[:2] == ["queue", "item"] and rest[3:] == ["api", "json"] and method == "GET":
                q = state.queue.get(int(rest[2])) if rest[2].isdigit() else None
                if q is None:
                    raise not_found
                return json_reply(state.queue_json(q, now))
            if rest == ["queue", "cancelItem"] and method == "POST":
                raw = param("id", "")
                if not raw.lstrip("-").isdigit():
                    raise jetty_error(400, "Bad Request", uri)
                qid = int(raw)
                q = state.queue.get(qid)
                if q is None:
                    raise jetty_error(404, f"Provided id ({qid}) not found", uri)
                if q.left_at is not None:
                    raise jetty_error(500, f"Could not cancel run for id {qid}", uri)
                q.cancelled, q.left_at = True, now
                return Reply(204)
            if rest == ["computer", "api", "json"] and method == "GET":
                return json_reply({"_class": "hudson.model.ComputerSet", "busyExecutors": 0,
                                   "computer": [state.computer_json()], "displayName": "Nodes", "totalExecutors": 2})
            if len(rest) == 4 and rest[0] == "computer" and rest[2:] == ["api", "json"] and method == "GET":
                if rest[1] not in ("(built-in)", "(master)", "Built-In Node"):
                    raise not_found
                return json_reply(state.computer_json())
            if len(rest) == 4 and rest[0] == "view" and rest[2:] == ["api", "json"] and method == "GET":
                if rest[1].lower() != "all":
                    raise not_found
                return json_reply({"_class": "hudson.model.AllView", "description": None,
                                   "jobs": [state.summary(i, now) for i in state.root.items.values()],
                                   "name": "all", "property": [], "url": state.url()})
            if rest == ["pluginManager", "api", "json"] and method == "GET":
                return json_reply({"_class": "hudson.LocalPluginManager", "plugins": PLUGINS})

        if isinstance(item, Folder):
            if rest == ["createItem"] and method == "POST":
                return self.create_item(state, item, form, body, content_type, now)
            if item is not state.root and rest == ["api", "json"] and method == "GET":
                return json_reply(state.folder_json(item, now))

        if item is not state.root:
            if rest == ["config.xml"]:
                if method == "GET":
                    return Reply(200, item.config, "application/xml;charset=utf-8")
                parse_config(body.decode("utf-8", "replace"))
                item.config = body.decode("utf-8", "replace")
                item.apply_config()
                if isinstance(item, Job):
                    item.hold_off = False
                return Reply(200)
            if rest == ["doRename"] and method == "POST":
                new_name = check_good_name(param("newName"))
                if new_name != item.name:
                    if new_name in item.parent.items:
                        raise failure(f"The name “{new_name}” is already in use.")
                    del item.parent.items[item.name]
                    item.name = new_name
                    item.parent.items[new_name] = item
                return Reply(302, headers={"Location": state.url(item.url_path())})
            if rest == ["doDelete"] and method == "POST":
                del item.parent.items[item.name]
                for q in state.queue.values():
                    if q.left_at is None and (q.job is item or self.inside(q.job, item)):
                        q.cancelled, q.left_at = True, now
                return Reply(302, headers={"Location": state.url(item.parent.url_path())})

        if isinstance(item, Job):
            if rest == ["api", "json"] and method == "GET":
                return json_reply(state.job_json(item, now, deep=bool(tree)))
            if rest in (["build"], ["buildWithParameters"]) and method == "POST":
                return self.schedule(state, item, rest[0], form, user, now)
            if rest:
                build = None
                if rest[0].isdigit():
                    build = item.builds.get(int(rest[0]))
                elif rest[0] in ("lastBuild", "lastCompletedBuild", "lastSuccessfulBuild", "lastFailedBuild",
                                 "lastStableBuild", "lastUnstableBuild", "lastUnsuccessfulBuild", "firstBuild"):
                    build = state.permalink(item, rest[0], now)
                if build is not None:
                    sub = rest[1:]
                    if sub == ["api", "json"] and method == "GET":
                        return json_reply(state.build_json(build, now))
                    if sub == ["logText", "progressiveText"] and method == "GET":
                        text = build.console(now)
                        try:
                            start = max(0, int(param("start", "0")))
                        except ValueError:
                            start = 0
                        start = min(start, len(text))
                        headers = {"X-Text-Size": str(len(text))}
                        if not build.done(now):
                            headers["X-More-Data"] = "true"
                        return Reply(200, text[start:], "text/plain;charset=utf-8", headers)
                    if sub == ["consoleText"] and method == "GET":
                        return Reply(200, build.console(now), "text/plain;charset=utf-8")
        raise not_found

    @staticmethod
    def inside(job, folder):
        parent = job.parent
        while parent is not None:
            if parent is folder:
                return True
            parent = parent.parent
        return False

    def create_item(self, state, parent, form, body, content_type, now):
        def param(name):
            values = form.get(name)
            return values[0] if values else None

        name = param("name")
        if name is None:
            raise failure("Query parameter 'name' is required", x_error=True)
        name = check_good_name(name)
        if name in parent.items:
            raise failure(f"A job already exists with the name ‘{name}’", x_error=True)
        mode = param("mode")
        if mode == "copy":
            source_name = param("from") or ""
            source = parent.items.get(source_name)
            if source is None and source_name.startswith("/"):
                source = state.root
                for n in [s for s in source_name.split("/") if s]:
                    source = source.items.get(n) if isinstance(source, Folder) else None
                    if source is None:
                        break
            if source is None or source is state.root:
                raise failure(f"No such job: {source_name}", x_error=True)
            item = new_item(name, parent, source.cls, source.config)
            if isinstance(item, Job):
                item.hold_off = True
        elif mode:
            if mode == FOLDER:
                item = Folder(name, parent)
            elif mode in (FREESTYLE,):
                item = Job(name, parent, FREESTYLE, empty_project_config())
            else:
                raise failure(f"No item type ‘{mode}’ is known", x_error=True)
        elif content_type in ("application/xml", "text/xml"):
            xml_text = body.decode("utf-8", "replace")
            cls = parse_config(xml_text)
            parent.items[name] = new_item(name, parent, cls, xml_text)
            return Reply(200)
        else:
            raise failure("No mode given", x_error=True)
        parent.items[name] = item
        return Reply(302, headers={"Location": state.url(item.url_path() + "configure")})

    def schedule(self, state, job, endpoint, form, user, now):
        if not job.buildable():
            raise jetty_error(409, f"{job.full_name()} is not buildable", self.path)
        if endpoint == "build" and job.params:
            raise jetty_error(400, "This page expects a form submission but had only {}", self.path)
        if endpoint == "buildWithParameters" and not job.params:
            raise jetty_error(400, f"{job.full_name()} is not parameterized", self.path)
        params = []
        for p in job.params:
            given = form.get(p["name"])
            value = given[0] if given else p["default"]
            if p["kind"] == "BooleanParameterDefinition" and isinstance(value, str):
                value = value.strip().lower() == "true"
            params.append((p["name"], value))
        delay = form.get("delay")
        wait = state.args.queue_delay
        if job.quiet_period is not None:
            wait = max(wait, job.quiet_period)
        if delay:
            m = re.match(r"^\s*(\d+(?:\.\d+)?)\s*(sec|secs|s)?\s*$", delay[0])
            if m:
                wait = max(state.args.queue_delay, float(m.group(1)))
        for q in state.queue.values():
            if q.job is job and q.left_at is None and not q.cancelled and q.params == params:
                return Reply(201, headers={"Location": state.url(f"queue/item/{q.id}/")})
        qid = state.next_queue_id
        state.next_queue_id += 1
        state.queue[qid] = QueueItem(qid, job, params, now, now + wait, user)
        state.stats["builds_queued"] += 1
        return Reply(201, headers={"Location": state.url(f"queue/item/{qid}/")})


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--user", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--password")
    parser.add_argument("--crumb-ttl", type=float, default=0, help="seconds a web session (and its crumb) lives; 0: forever")
    parser.add_argument("--no-csrf", action="store_true")
    parser.add_argument("--prefix", default="", help="serve under this path, e.g. /jenkins")
    parser.add_argument("--queue-delay", type=float, default=0.3)
    parser.add_argument("--build-duration", type=float, default=1.0)
    parser.add_argument("--left-ttl", type=float, default=300)
    parser.add_argument("--seed-job", action="append", default=[])
    parser.add_argument("--exit-on-stdin-eof", action="store_true")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    args.prefix = args.prefix.rstrip("/")
    if args.prefix and not args.prefix.startswith("/"):
        args.prefix = "/" + args.prefix

    state = State(args)
    for name in args.seed_job:
        state.seed(name, args.user)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.state = state
    port = server.server_address[1]
    state.base = f"http://127.0.0.1:{port}{args.prefix}"
    if args.exit_on_stdin_eof:
        def watch():
            while sys.stdin.buffer.read(4096):
                pass
            os._exit(0)
        threading.Thread(target=watch, daemon=True).start()
    print(f"LISTENING {port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
