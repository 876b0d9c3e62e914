//! `/excel/*` (the original's `excel_controller.go`): the user export (docs/excel.md).

use std::sync::Arc;

use actix_web::HttpResponse;
use actix_web::http::header::{
    self, Charset, ContentDisposition, DispositionParam, DispositionType, ExtendedValue,
};
use async_trait::async_trait;
use chrono::{Days, NaiveDate, NaiveTime};
use shaku::{Component, HasComponent, Interface, ModuleInterface};
use shaku_actix::Inject;
use utoipa::ToSchema;

use crate::controller::extract::ValidatedQuery;
use crate::middleware::jwt_auth::Authenticated;
use crate::model::forms::ExportQuery;
use crate::model::user::UserFilter;
use crate::server::routes::Routes;
use crate::service::error::ServiceError;
use crate::service::excel::{ExcelService, ExportFile};

/// The xlsx media type.
pub const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// The Excel controller.
#[async_trait]
pub trait ExcelController: Interface {
    /// `GET /excel/export`: the workbook and its file name.
    ///
    /// # Errors
    /// As the service.
    async fn export(&self, query: ExportQuery) -> Result<(ExportFile, &str), ServiceError>;
}

/// [`ExcelController`] over the Excel service.
#[derive(Component)]
#[shaku(interface = ExcelController)]
pub struct ExcelControllerImpl {
    #[shaku(inject)]
    excel: Arc<dyn ExcelService>,
    /// `excel.export_file_name`.
    file_name: String,
}

#[async_trait]
impl ExcelController for ExcelControllerImpl {
    async fn export(&self, query: ExportQuery) -> Result<(ExportFile, &str), ServiceError> {
        let filter = filter_of(&query);
        Ok((self.excel.export(filter).await?, &self.file_name))
    }
}

/// The query as a filter: days from midnight, `created_to` inclusive (a range that ends before
/// it starts matches nobody).
fn filter_of(query: &ExportQuery) -> UserFilter {
    let midnight = |day: NaiveDate| day.and_time(NaiveTime::MIN);
    UserFilter {
        gender: query.gender,
        created_from: query.created_from.map(midnight),
        created_before: query
            .created_to
            .and_then(|day| day.checked_add_days(Days::new(1)))
            .map(midnight),
    }
}

/// Registers `/excel/*`.
pub fn routes<M>(routes: &mut Routes)
where
    M: ModuleInterface + HasComponent<dyn ExcelController> + ?Sized,
{
    use goex_errors::{ERR_DIAL, ERR_EXPORT};
    routes.add(__path_export, &[ERR_EXPORT, ERR_DIAL], export::<M>);
}

/// An xlsx workbook.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
struct XlsxFile(#[allow(dead_code)] Vec<u8>);

/// The users as an xlsx workbook (columns 用户Id, 用户名, 性别, 创建时间; never passwords),
/// optionally filtered; written in constant memory and sent with its length.
#[utoipa::path(
    get,
    path = "/excel/export",
    tag = "excel",
    operation_id = "excelExport",
    params(ExportQuery),
    security(("bearer" = [])),
    responses((
        status = 200,
        description = "The workbook, as an attachment (`excel.export_file_name`).",
        content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        body = XlsxFile,
    )),
)]
async fn export<M>(
    controller: Inject<M, dyn ExcelController>,
    ValidatedQuery(query): ValidatedQuery<ExportQuery>,
    // Last: a bad query is refused before the token costs a lookup.
    _user: Authenticated,
) -> Result<HttpResponse, ServiceError>
where
    M: ModuleInterface + HasComponent<dyn ExcelController> + ?Sized,
{
    let (workbook, file_name) = controller.export(query).await?;
    let body = tokio_util::io::ReaderStream::with_capacity(
        tokio::fs::File::from_std(workbook.file),
        64 * 1024,
    );
    Ok(HttpResponse::Ok()
        .content_type(XLSX)
        .insert_header(attachment(file_name))
        // Personal data: never kept by a browser or proxy cache.
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("X-Rows", workbook.rows.to_string()))
        .no_chunking(workbook.len)
        .streaming(body))
}

/// `Content-Disposition: attachment` with an ASCII `filename` and the UTF-8 `filename*`
/// (RFC 6266 §4.3: clients that know `filename*` prefer it).
fn attachment(name: &str) -> ContentDisposition {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut parameters = vec![DispositionParam::Filename(ascii)];
    if !name.is_ascii() {
        parameters.push(DispositionParam::FilenameExt(ExtendedValue {
            charset: Charset::Ext("UTF-8".into()),
            language_tag: None,
            value: name.as_bytes().to_vec(),
        }));
    }
    ContentDisposition {
        disposition: DispositionType::Attachment,
        parameters,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_get_an_ascii_fallback_and_a_utf8_form() {
        assert_eq!(
            attachment("hello.xlsx").to_string(),
            r#"attachment; filename="hello.xlsx""#
        );
        assert_eq!(
            attachment("用户.xlsx").to_string(),
            r#"attachment; filename="__.xlsx"; filename*=UTF-8''%E7%94%A8%E6%88%B7.xlsx"#
        );
    }

    #[test]
    fn days_become_a_half_open_range() {
        let day = |s: &str| Some(s.parse::<NaiveDate>().unwrap());
        let filter = filter_of(&ExportQuery {
            gender: Some(1),
            created_from: day("2026-01-01"),
            created_to: day("2026-01-31"),
        });
        assert_eq!(
            filter.created_from.unwrap().to_string(),
            "2026-01-01 00:00:00"
        );
        assert_eq!(
            filter.created_before.unwrap().to_string(),
            "2026-02-01 00:00:00"
        );
        let filter = filter_of(&ExportQuery {
            created_from: day("2026-02-01"),
            created_to: day("2026-01-01"),
            ..ExportQuery::default()
        });
        assert!(
            filter.created_from >= filter.created_before,
            "empty, not an error"
        );
    }
}
