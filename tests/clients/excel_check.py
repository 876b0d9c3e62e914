"""Opens an export of GET /excel/export with openpyxl (PyPI) and checks its shape and cell types.

Usage: excel_check.py FILE ROWS. Exit 0 when the first sheet has the header
用户Id, 用户名, 性别, 创建时间 and ROWS data rows with int ids, str names, int genders and
datetime creation times, and no cell anywhere holds a password hash.
"""

import datetime
import sys

import openpyxl


def main() -> int:
    path, rows = sys.argv[1], int(sys.argv[2])
    book = openpyxl.load_workbook(path, read_only=True)
    sheet = book.worksheets[0]
    values = list(sheet.iter_rows(values_only=True))
    header = list(values[0])
    assert header == ["用户Id", "用户名", "性别", "创建时间"], header
    data = values[1:]
    assert len(data) == rows, (len(data), rows)
    previous = 0
    for row in data:
        user_id, name, gender, created = row
        assert isinstance(user_id, int) and user_id > previous, row
        previous = user_id
        assert isinstance(name, str) and name, row
        assert isinstance(gender, int) and gender in (0, 1, 2), row
        assert isinstance(created, datetime.datetime), row
        assert not any("argon2" in str(cell) for cell in row), row
    print(f"ok {len(data)} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
