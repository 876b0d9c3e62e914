"""The import benchmark's workbook: ROWS users (用户名 import0000000..., 性别 0-2, 创建时间 a
date-time cell) written by Python XlsxWriter, as a user's tool would; with PASSWORD_EVERY, every
that many rows also has a 密码 (the abuse suite). Usage:
excel_import_file.py OUT ROWS [PASSWORD_EVERY]."""

import datetime
import sys

import xlsxwriter


def main() -> None:
    out, rows = sys.argv[1], int(sys.argv[2])
    every = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    book = xlsxwriter.Workbook(out, {"constant_memory": True})
    sheet = book.add_worksheet("users")
    when = book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
    for col, name in enumerate(["用户名", "性别", "创建时间"] + (["密码"] if every else [])):
        sheet.write_string(0, col, name)
    start = datetime.datetime(2025, 1, 1)
    for i in range(rows):
        sheet.write_string(i + 1, 0, f"import{i:07d}")
        sheet.write_number(i + 1, 1, i % 3)
        sheet.write_datetime(i + 1, 2, start + datetime.timedelta(seconds=i), when)
        if every and i % every == 0:
            sheet.write_string(i + 1, 3, "abc12345")
    book.close()


if __name__ == "__main__":
    main()
