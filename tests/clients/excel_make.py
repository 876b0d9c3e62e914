"""Writes users workbooks the way other tools do, for the import tests (tests/api/excel_import.rs).

Usage: excel_make.py DIR. Writes into DIR:
  openpyxl.xlsx              openpyxl (inline strings, a datetime cell, an extra sheet)
  xlsxwriter.xlsx            XlsxWriter (shared strings)
  xlsxwriter-inline.xlsx     XlsxWriter in constant_memory mode (inline strings)
  libreoffice.csv            the same rows as CSV, for `soffice --convert-to xlsx`
Each holds, under the prefix of its file (oxl, xws, xwi, lo), the rows the Rust test expects:
  <p>user01  gender 1 (a number)    created 2025-03-04 05:06:07 (a date cell)   password abc12345
  <p>user02  gender "2" (text)      created "2025-03-04" (text)                 no password
  <P>USER03  gender empty (0)       created empty (now), the name upper case with spaces around
  a numeric username 1234567<n> (a number cell), gender 男 (1)
with the columns in a shuffled order, an unknown column, an ignored 用户Id, and a blank row.
"""

import csv
import datetime
import os
import sys

import openpyxl
import xlsxwriter

HEADER = ["性别", "备注", "用户名", "创建时间", "密码", "用户Id"]
WHEN = datetime.datetime(2025, 3, 4, 5, 6, 7)


def rows(prefix: str, number: int):
    return [
        [1, "note", f"{prefix}user01", WHEN, "abc12345", 999],
        ["2", None, f"{prefix}user02", "2025-03-04", None, 1000],
        [None, None, f"  {prefix.upper()}USER03 ", None, None, None],
        None,  # a blank row
        ["男", None, number, None, None, None],
    ]


def with_openpyxl(path: str) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "users"
    sheet.append(HEADER)
    for row in rows("oxl", 12345671):
        sheet.append(row or [])
    for cell in sheet["D"][1:]:
        if isinstance(cell.value, datetime.datetime):
            cell.number_format = "yyyy-mm-dd hh:mm:ss"
    other = book.create_sheet("other")
    other.append(["用户名", "性别"])
    other.append(["not read", 9])
    book.save(path)


def with_xlsxwriter(path: str, prefix: str, number: int, constant_memory: bool) -> None:
    book = xlsxwriter.Workbook(path, {"constant_memory": constant_memory})
    sheet = book.add_worksheet("users")
    when = book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
    for col, name in enumerate(HEADER):
        sheet.write_string(0, col, name)
    for r, row in enumerate(rows(prefix, number), start=1):
        for col, value in enumerate(row or []):
            if value is None:
                continue
            if isinstance(value, datetime.datetime):
                sheet.write_datetime(r, col, value, when)
            elif isinstance(value, str):
                # Text stays text: "2" is a number stored as text.
                sheet.write_string(r, col, value)
            else:
                sheet.write_number(r, col, value)
    book.add_worksheet("other").write_string(0, 0, "ignored")
    book.close()


def for_libreoffice(path: str) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(HEADER)
        for row in rows("lo", 12345674):
            if row is None:
                out.writerow([])
                continue
            out.writerow(
                [v.strftime("%Y-%m-%d %H:%M:%S") if isinstance(v, datetime.datetime) else ("" if v is None else v) for v in row]
            )


def main() -> int:
    out = sys.argv[1]
    with_openpyxl(os.path.join(out, "openpyxl.xlsx"))
    with_xlsxwriter(os.path.join(out, "xlsxwriter.xlsx"), "xws", 12345672, False)
    with_xlsxwriter(os.path.join(out, "xlsxwriter-inline.xlsx"), "xwi", 12345673, True)
    for_libreoffice(os.path.join(out, "libreoffice.csv"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
