#!/usr/bin/python3
"""Prints each failed test in the given .trx files with the head of its message and stack.

build.sh prints this right above the final count, so the end of a CI log (often all that is
kept) names what failed and why, not only which assembly."""
import sys
import xml.etree.ElementTree as ET

NS = {"t": "http://microsoft.com/schemas/VisualStudio/TeamTest/2010"}
MAX_LINES = 25

for path in sys.argv[1:]:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as error:
        print(f"{path}: cannot read ({error})")
        continue
    for result in root.iterfind(".//t:UnitTestResult", NS):
        if result.get("outcome") != "Failed":
            continue
        print(f"FAILED {result.get('testName')} ({result.get('duration')})")
        for tag in ("Message", "StackTrace"):
            node = result.find(f".//t:ErrorInfo/t:{tag}", NS)
            if node is not None and node.text:
                lines = node.text.strip().splitlines()
                for line in lines[:MAX_LINES]:
                    print(f"    {line}")
                if len(lines) > MAX_LINES:
                    print(f"    ... {len(lines) - MAX_LINES} more lines in the .trx")
        print()
