//! Keyset pagination and record ids, shared by every listed resource: `GET /<plural>?after=&limit=`
//! answers `{"data": [...], "next_after": id|null}` and `/<plural>/{id}` takes a positive id.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

/// The most rows one page holds.
pub const MAX_PAGE_LIMIT: i64 = 100;
/// The rows a page holds when the query names no `limit`.
pub const DEFAULT_PAGE_LIMIT: i64 = 20;

/// `?after=<id>&limit=`: the rows with ids above `after`, by id, at most `limit` of them. Each
/// page costs the same however deep the listing goes (no OFFSET).
#[derive(Clone, Copy, Debug, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// The `next_after` of the previous page; absent or 0: from the first row.
    #[serde(default)]
    #[validate(range(min = 0))]
    #[param(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    pub after: i64,
    /// Rows per page, 1 to 100 (default 20).
    #[serde(default = "default_limit")]
    #[validate(range(min = 1, max = 100))]
    #[param(minimum = 1, maximum = 100)]
    pub limit: i64,
}

impl Default for PageQuery {
    fn default() -> Self {
        Self {
            after: 0,
            limit: DEFAULT_PAGE_LIMIT,
        }
    }
}

fn default_limit() -> i64 {
    DEFAULT_PAGE_LIMIT
}

/// One page of a listing: its rows and where the next page starts (`null`: this is the last).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct Page<T> {
    /// The rows, by id.
    pub data: Vec<T>,
    /// The `after` of the next page, or `null` when there is none.
    pub next_after: Option<i64>,
}

impl<T> Page<T> {
    /// The page of `rows`, read with `limit + 1` so that a further row tells there is a next
    /// page; `id` reads a row's id.
    pub fn from_probe(mut rows: Vec<T>, limit: i64, id: impl Fn(&T) -> i64) -> Self {
        let limit = usize::try_from(limit).unwrap_or(0);
        let next_after = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(&id)
        } else {
            None
        };
        Self {
            data: rows,
            next_after,
        }
    }

    /// The same page with each row converted (a row to what the API shows of it).
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            data: self.data.into_iter().map(f).collect(),
            next_after: self.next_after,
        }
    }
}

/// `/{id}`: a record's id, 1 or more.
#[derive(Clone, Copy, Debug, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct IdPath {
    /// The record's id.
    #[validate(range(min = 1))]
    #[param(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    pub id: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_row_beyond_the_limit_names_the_next_page() {
        let page = Page::from_probe(vec![1, 2, 3], 2, |r| *r);
        assert_eq!(page.data, [1, 2]);
        assert_eq!(page.next_after, Some(2));
        let last = Page::from_probe(vec![3], 2, |r| *r);
        assert_eq!(last.data, [3]);
        assert_eq!(last.next_after, None);
        let empty = Page::from_probe(Vec::<i64>::new(), 2, |r| *r);
        assert!(empty.data.is_empty() && empty.next_after.is_none());
    }

    #[test]
    fn the_limit_is_held_to_one_to_a_hundred() {
        for (limit, ok) in [(0, false), (1, true), (100, true), (101, false)] {
            let q = PageQuery { after: 0, limit };
            assert_eq!(q.validate().is_ok(), ok, "{limit}");
        }
        assert!(
            PageQuery {
                after: -1,
                limit: 1
            }
            .validate()
            .is_err()
        );
    }
}
