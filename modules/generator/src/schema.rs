//! `src/model/schema.rs` as `diesel print-schema` prints it against MySQL: one `diesel::table!`
//! block per table in name order, then the `joinable!` lines of the foreign keys, then
//! `allow_tables_to_appear_in_same_query!` naming every table. A new table is added the way the
//! CLI would print it after the new migration (`scripts/diesel-check.sh` compares the two byte
//! for byte), so the generator needs no database.

use crate::resource::FieldContext;

const HEADER: &str = "// @generated automatically by Diesel CLI.\n";

/// The schema file, split into its parts.
#[derive(Clone, Debug)]
pub struct Schema {
    /// (table name, its block, without the trailing newline).
    tables: Vec<(String, String)>,
    /// `diesel::joinable!(...)` lines.
    joinables: Vec<String>,
}

impl Schema {
    /// Splits `text`.
    ///
    /// # Errors
    /// The text is not in the layout `diesel print-schema` writes.
    pub fn parse(text: &str) -> Result<Self, String> {
        let body = text.strip_prefix(HEADER).ok_or(
            "does not start with diesel's `@generated` line: is it diesel print-schema's output?",
        )?;
        let mut tables = Vec::new();
        let mut joinables = Vec::new();
        let mut rest = body;
        while let Some(start) = rest.find("diesel::table! {\n") {
            let end = rest[start..]
                .find("\n}\n")
                .ok_or("a `diesel::table!` block does not end with `}`")?;
            let block = &rest[start..start + end + 2];
            let name = block
                .lines()
                .nth(1)
                .and_then(|l| l.split_whitespace().next())
                .ok_or("a table block names no table")?;
            tables.push((name.to_owned(), block.to_owned()));
            rest = &rest[start + end + 3..];
        }
        // Then the joinable lines and one allow_tables invocation (on one line, or one table a
        // line once rustfmt wrapped it): the invocation is written anew from the tables.
        let mut in_allow = false;
        for line in rest.lines() {
            if line.starts_with("diesel::joinable!") && !in_allow {
                joinables.push(line.to_owned());
            } else if line.starts_with("diesel::allow_tables_to_appear_in_same_query!(") {
                in_allow = !line.ends_with(");");
            } else if in_allow {
                in_allow = line.trim() != ");";
            } else if !line.is_empty() {
                return Err(format!("unexpected line after the tables: `{line}`"));
            }
        }
        if tables.is_empty() {
            return Err("no `diesel::table!` block".into());
        }
        Ok(Self { tables, joinables })
    }

    /// Whether a table is declared.
    pub fn has_table(&self, name: &str) -> bool {
        self.tables.iter().any(|(n, _)| n == name)
    }

    /// The file with `block` for `name` (and its `joinable`) added, as diesel prints it.
    pub fn with_table(&self, name: &str, block: &str, joinable: Option<&str>) -> String {
        let mut tables = self.tables.clone();
        tables.push((name.to_owned(), block.trim_end().to_owned()));
        tables.sort_by(|a, b| a.0.cmp(&b.0));
        let mut joinables = self.joinables.clone();
        joinables.extend(joinable.map(str::to_owned));
        joinables.sort();
        joinables.dedup();
        let mut out = String::from(HEADER);
        for (_, block) in &tables {
            out.push('\n');
            out.push_str(block);
            out.push('\n');
        }
        if !joinables.is_empty() {
            out.push('\n');
            for line in &joinables {
                out.push_str(line);
                out.push('\n');
            }
        }
        let names: Vec<&str> = tables.iter().map(|(n, _)| n.as_str()).collect();
        out.push_str(&format!(
            "\ndiesel::allow_tables_to_appear_in_same_query!({},);\n",
            names.join(", ")
        ));
        out
    }
}

/// The `diesel::table!` block of a generated table, in its columns' order.
pub fn table_block(table: &str, owned: bool, fields: &[FieldContext]) -> String {
    let mut out = format!("diesel::table! {{\n    {table} (id) {{\n        id -> Bigint,\n");
    if owned {
        out.push_str("        owner_id -> Bigint,\n");
    }
    for f in fields {
        if let Some(max) = f.max_length {
            out.push_str(&format!("        #[max_length = {max}]\n"));
        }
        let ty = if f.optional {
            format!("Nullable<{}>", f.diesel_type)
        } else {
            f.diesel_type.clone()
        };
        out.push_str(&format!("        {} -> {ty},\n", f.name));
    }
    out.push_str("        created_at -> Timestamp,\n        updated_at -> Timestamp,\n    }\n}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = "// @generated automatically by Diesel CLI.\n\ndiesel::table! {\n    b (id) {\n        id -> Bigint,\n    }\n}\n\ndiesel::table! {\n    users (id) {\n        id -> Bigint,\n    }\n}\n\ndiesel::joinable!(b -> users (id));\n\ndiesel::allow_tables_to_appear_in_same_query!(b, users,);\n";

    #[test]
    fn the_file_reads_back_as_it_was() {
        let schema = Schema::parse(SCHEMA).unwrap();
        assert!(schema.has_table("users") && !schema.has_table("a"));
        // Adding a table already there (its block unchanged) prints the same file.
        let mut without = schema.clone();
        let users = without.tables.pop().unwrap();
        assert_eq!(without.with_table(&users.0, &users.1, None), SCHEMA);
    }

    #[test]
    fn a_new_table_takes_its_place_by_name() {
        let schema = Schema::parse(SCHEMA).unwrap();
        let out = schema.with_table(
            "a",
            "diesel::table! {\n    a (id) {\n        id -> Bigint,\n    }\n}",
            Some("diesel::joinable!(a -> users (owner_id));"),
        );
        assert!(out.find("    a (id)").unwrap() < out.find("    b (id)").unwrap());
        assert!(out.contains(
            "diesel::joinable!(a -> users (owner_id));\ndiesel::joinable!(b -> users (id));\n"
        ));
        assert!(out.ends_with("diesel::allow_tables_to_appear_in_same_query!(a, b, users,);\n"));
    }

    #[test]
    fn a_wrapped_allow_list_is_read_too() {
        let wrapped = SCHEMA.replace(
            "diesel::allow_tables_to_appear_in_same_query!(b, users,);",
            "diesel::allow_tables_to_appear_in_same_query!(\n    b,\n    users,\n);",
        );
        let schema = Schema::parse(&wrapped).unwrap();
        assert_eq!(schema.joinables, ["diesel::joinable!(b -> users (id));"]);
        assert!(Schema::parse(&(wrapped + "fn stray() {}\n")).is_err());
    }

    #[test]
    fn the_projects_own_schema_parses_and_prints_unchanged() {
        let text = include_str!("../../../src/model/schema.rs");
        let schema = Schema::parse(text).unwrap();
        let mut without = schema.clone();
        let last = without.tables.pop().unwrap();
        assert_eq!(without.with_table(&last.0, &last.1, None), text);
    }
}
