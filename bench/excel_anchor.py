"""The export's anchor: Python XlsxWriter in constant_memory mode doing what GET /excel/export
does: read the users of a go_example SQLite database by id and write 用户Id, 用户名, 性别,
创建时间 (a date-time format) to an xlsx file. Usage: excel_anchor.py DB OUT; prints the rows."""

import datetime
import sqlite3
import sys

import xlsxwriter


def main() -> None:
    db, out = sys.argv[1], sys.argv[2]
    con = sqlite3.connect(db)
    book = xlsxwriter.Workbook(out, {"constant_memory": True})
    sheet = book.add_worksheet("users")
    bold = book.add_format({"bold": True})
    when = book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
    for col, name in enumerate(["用户Id", "用户名", "性别", "创建时间"]):
        sheet.write_string(0, col, name, bold)
    row = 0
    for user_id, name, gender, created in con.execute(
        "SELECT id, username, gender, created_at FROM users ORDER BY id"
    ):
        row += 1
        sheet.write_number(row, 0, user_id)
        sheet.write_string(row, 1, name)
        sheet.write_number(row, 2, gender)
        sheet.write_datetime(row, 3, datetime.datetime.fromisoformat(created), when)
    book.close()
    print(row)


if __name__ == "__main__":
    main()
