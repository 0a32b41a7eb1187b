"""A case's result, and the results of a run as text, JSON and JUnit XML."""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

PASS, FAIL, ERROR, SKIP = "pass", "fail", "error", "skip"
TAIL_LINES = 25


@dataclass
class CaseResult:
    element: str
    case: str
    status: str                  # pass, fail, error, skip
    seconds: float = 0.0
    reason: str = ""             # one line
    details: str = ""            # hook error text, expectation failures, output tail
    hook: str = ""               # phase/hook that failed, when known
    expected_failure: bool = False
    kind: str = "functional"     # or "unit"
    log: str = ""                # kept log file, if any
    boot: dict[str, Any] | None = None
    release: str = ""            # DIB_RELEASE the case was built with, if --release set it
    started: float = 0.0         # wall clock (epoch seconds) when the case began
    # A failed case's whole log (build output, or the unit run's), for
    # reports that carry it (subunit); not part of the JSON report.
    output: str = field(default="", repr=False)

    @property
    def label(self) -> str:
        return f"{self.case}[{self.release}]" if self.release else self.case

    @property
    def id(self) -> str:
        return f"{self.element}/{self.label}"

    @property
    def ok(self) -> bool:
        return self.status in (PASS, SKIP)


def format_text(results: Sequence[CaseResult], *, tail_lines: int = TAIL_LINES) -> str:
    rows = [(r.id, r.status.upper(), f"{r.seconds:.1f}", r.reason) for r in results]
    widths = [max([len(h)] + [len(row[i]) for row in rows])
              for i, h in enumerate(("case", "result", "seconds"))]
    lines = [f"{'case':<{widths[0]}}  {'result':<{widths[1]}}  {'seconds':>{widths[2]}}  reason"]
    lines.append("  ".join("-" * w for w in widths) + "  ------")
    for case, status, secs, reason in rows:
        lines.append(f"{case:<{widths[0]}}  {status:<{widths[1]}}  {secs:>{widths[2]}}  "
                     f"{reason}".rstrip())
    failed = [r for r in results if not r.ok]
    for r in failed:
        if r.details:
            lines.append("")
            lines.append(f"--- {r.id}: {r.status.upper()}" + (f" in {r.hook}" if r.hook else ""))
            detail = r.details.splitlines()
            lines.extend(detail[-tail_lines:] if len(detail) > tail_lines else detail)
            if r.log:
                lines.append(f"(full log: {r.log})")
    counts = summary(results)
    lines.append("")
    lines.append(f"{counts['total']} case(s): {counts['passed']} passed, {counts['failed']} "
                 f"failed, {counts['errors']} error(s), {counts['skipped']} skipped "
                 f"({counts['seconds']:.1f} s)")
    return "\n".join(lines) + "\n"


def summary(results: Sequence[CaseResult]) -> dict[str, Any]:
    return {"total": len(results),
            "passed": sum(r.status == PASS for r in results),
            "failed": sum(r.status == FAIL for r in results),
            "errors": sum(r.status == ERROR for r in results),
            "skipped": sum(r.status == SKIP for r in results),
            "seconds": round(sum(r.seconds for r in results), 2)}


def format_json(results: Sequence[CaseResult]) -> str:
    data = {"summary": summary(results),
            "results": [_json_result(r) for r in results]}
    return json.dumps(data, indent=1) + "\n"


def _json_result(r: CaseResult) -> dict[str, Any]:
    data = dict(asdict(r), id=r.id, seconds=round(r.seconds, 2), started=round(r.started, 3))
    del data["output"]     # the log file (--log-dir) has it
    return data


_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _xml_text(text: str) -> str:
    return _XML_BAD.sub("?", text)


def format_junit(results: Sequence[CaseResult], *, tail_lines: int = 60) -> str:
    """JUnit XML: one testsuite per element, one testcase per case."""
    suites = ET.Element("testsuites", name="dib test")
    by_element: dict[str, list[CaseResult]] = {}
    for r in results:
        by_element.setdefault(r.element, []).append(r)
    totals = summary(results)
    suites.set("tests", str(totals["total"]))
    suites.set("failures", str(totals["failed"]))
    suites.set("errors", str(totals["errors"]))
    suites.set("skipped", str(totals["skipped"]))
    suites.set("time", f"{totals['seconds']:.3f}")
    for element, items in by_element.items():
        counts = summary(items)
        suite = ET.SubElement(suites, "testsuite", name=element, tests=str(counts["total"]),
                              failures=str(counts["failed"]), errors=str(counts["errors"]),
                              skipped=str(counts["skipped"]), time=f"{counts['seconds']:.3f}")
        for r in items:
            case = ET.SubElement(suite, "testcase", name=r.label, classname=f"{r.kind}.{element}",
                                 time=f"{r.seconds:.3f}")
            if r.log:
                ET.SubElement(case, "properties").append(
                    ET.Element("property", name="log", value=r.log))
            if r.status in (FAIL, ERROR):
                tag = "failure" if r.status == FAIL else "error"
                message = r.reason + (f" [{r.hook}]" if r.hook and r.hook not in r.reason else "")
                node = ET.SubElement(case, tag, message=_xml_text(message),
                                     type=r.hook or r.status)
                detail = r.details.splitlines()[-tail_lines:]
                node.text = _xml_text("\n".join(detail))
            elif r.status == SKIP:
                ET.SubElement(case, "skipped", message=_xml_text(r.reason))
            elif r.reason:
                out = ET.SubElement(case, "system-out")
                out.text = _xml_text(r.reason)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, "unicode") + "\n"
