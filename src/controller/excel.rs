//! `/excel/*` (the original's `excel_controller.go`): the user export, the import and its upload
//! page (docs/excel.md). The export and the import are admin capabilities (issue 22: an import
//! could set anyone's password, an export listed every user to any user): they take [`Admin`].

use std::cell::Cell;
use std::fs::File;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::http::header::{
    self, Charset, ContentDisposition, DispositionParam, DispositionType, ExtendedValue,
};
use actix_web::{HttpRequest, HttpResponse, web};
use async_trait::async_trait;
use chrono::{Days, NaiveDate, NaiveTime};
use shaku::{Component, HasComponent, Interface, ModuleInterface};
use utoipa::ToSchema;

use crate::meta::config::ExcelConfig;
use crate::model::excel::{ImportJobView, ImportReport};
use crate::model::forms::{ExportQuery, ImportQuery};
use crate::model::user::UserFilter;
use crate::service::auth::AuthService;
use crate::service::error::ServiceError;
use crate::service::excel::{ExcelService, ImportOptions, ImportStarted};
use crate::web::auth::Admin;
use crate::web::extract::ValidatedQuery;
use crate::web::inject::Inject;
use crate::web::routes::Routes;

/// The xlsx media type.
pub const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// The Excel controller: one method per route, each given the route's validated input and
/// the admin who asks, answering the HTTP response.
#[async_trait(?Send)]
pub trait ExcelController: Interface {
    /// `GET /excel/export`: the workbook as an attachment, streamed with its length.
    ///
    /// # Errors
    /// As the service.
    async fn export(&self, query: ExportQuery) -> Result<HttpResponse, ServiceError>;

    /// `POST /excel/import`: takes a place (uploads being received count against
    /// `excel.max_running_imports` too), receives the upload, imports it with the query's
    /// options (the configured ones where it has none): 200 with the report, or 202 with the
    /// job when it goes on in the background.
    ///
    /// # Errors
    /// 503 / 10009 at `excel.max_running_imports`; the upload's refusals
    /// ([`ServiceError::PayloadTooLarge`], [`ServiceError::RequestTimeout`],
    /// [`ServiceError::NoUpload`]); as the service.
    async fn import(
        &self,
        req: &HttpRequest,
        payload: web::Payload,
        admin: i64,
        query: ImportQuery,
    ) -> Result<HttpResponse, ServiceError>;

    /// `GET /excel/import/{id}`: the job of `admin`.
    ///
    /// # Errors
    /// As the service.
    async fn job(&self, admin: i64, id: &str) -> Result<HttpResponse, ServiceError>;
}

/// [`ExcelController`] over the Excel service.
#[derive(Component)]
#[shaku(interface = ExcelController)]
pub struct ExcelControllerImpl {
    #[shaku(inject)]
    excel: Arc<dyn ExcelService>,
    /// `excel.*`: the export's file name, the import's default options and how its upload
    /// is received.
    config: Arc<ExcelConfig>,
}

#[async_trait(?Send)]
impl ExcelController for ExcelControllerImpl {
    async fn export(&self, query: ExportQuery) -> Result<HttpResponse, ServiceError> {
        let workbook = self.excel.export(filter_of(&query)).await?;
        let body = tokio_util::io::ReaderStream::with_capacity(
            tokio::fs::File::from_std(workbook.file),
            64 * 1024,
        );
        Ok(HttpResponse::Ok()
            .content_type(XLSX)
            .insert_header(attachment(&self.config.export_file_name))
            // Personal data: never kept by a browser or proxy cache.
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header(("X-Rows", workbook.rows.to_string()))
            .no_chunking(workbook.len)
            .streaming(body))
    }

    async fn import(
        &self,
        req: &HttpRequest,
        payload: web::Payload,
        admin: i64,
        query: ImportQuery,
    ) -> Result<HttpResponse, ServiceError> {
        // The place first: uploads being received count against excel.max_running_imports too.
        let slot = self.excel.reserve_import()?;
        let file = receive_upload(req, payload, &self.config).await?;
        let options = ImportOptions {
            mode: query.mode.unwrap_or(self.config.import_mode),
            on_existing: query.on_existing.unwrap_or(self.config.on_existing),
        };
        match self.excel.import(slot, admin, file, options).await? {
            ImportStarted::Finished(report) => {
                Ok(HttpResponse::Ok().json(ImportResponse { data: report }))
            }
            ImportStarted::Running(job) => Ok(HttpResponse::Accepted()
                .insert_header((header::LOCATION, format!("/excel/import/{}", job.id)))
                .json(ImportJobResponse { data: job })),
        }
    }

    async fn job(&self, admin: i64, id: &str) -> Result<HttpResponse, ServiceError> {
        let job = self.excel.job(admin, id).await?;
        Ok(HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(ImportJobResponse { data: job }))
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
    M: ModuleInterface + HasComponent<dyn ExcelController> + HasComponent<dyn AuthService> + ?Sized,
{
    use goex_errors::{
        ERR_DIAL, ERR_EXPORT, ERR_FILE_PARSE, ERR_FORBIDDEN, ERR_IMPORT, ERR_NOT_FOUND,
        ERR_TOO_MANY_REQUESTS, ERR_UNAVAILABLE,
    };
    // Admins only: every route but the page answers 403 / 10011 to other users.
    routes.add(
        __path_export,
        &[ERR_FORBIDDEN, ERR_EXPORT, ERR_DIAL, ERR_UNAVAILABLE],
        export::<M>,
    );
    routes.add(
        __path_import,
        &[
            ERR_FORBIDDEN,
            ERR_IMPORT,
            ERR_FILE_PARSE,
            ERR_DIAL,
            ERR_UNAVAILABLE,
            ERR_TOO_MANY_REQUESTS,
        ],
        import::<M>,
    );
    routes.add(
        __path_import_job,
        &[ERR_FORBIDDEN, ERR_NOT_FOUND, ERR_DIAL],
        import_job::<M>,
    );
    routes.add(__path_import_index, &[], import_index);
}

/// The upload form: a users workbook in the field `uploadFile`.
#[derive(ToSchema)]
#[allow(dead_code)]
struct UploadForm {
    /// The .xlsx file: 用户名 and 性别 columns required, 用户Id, 密码 and 创建时间 optional,
    /// in any order.
    #[schema(rename = "uploadFile", value_type = String, format = Binary)]
    upload_file: Vec<u8>,
}

/// A finished import's report.
#[derive(serde::Serialize, ToSchema)]
struct ImportResponse {
    data: ImportReport,
}

/// An import job.
#[derive(serde::Serialize, ToSchema)]
struct ImportJobResponse {
    data: ImportJobView,
}

/// Imports users from an uploaded workbook (columns found by header name; ids in the file are
/// ignored; passwords validated and hashed). Valid rows go in by batches inside one
/// transaction. All-or-nothing (the default): one bad row and nothing is written (400 / 30001,
/// the report in `error.details`). `skip_invalid`: bad rows are reported and left out.
#[utoipa::path(
    post,
    path = "/excel/import",
    tag = "excel",
    operation_id = "excelImport",
    params(ImportQuery),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    security(("bearer" = ["admin"])),
    responses(
        (
            status = 200,
            description = "The import was committed: what it inserted, updated, skipped and left out.",
            body = ImportResponse,
        ),
        (
            status = 202,
            description = "More than `excel.async_rows` rows: the import goes on in the background as this job (`Location`: GET /excel/import/{id}).",
            body = ImportJobResponse,
            headers(("Location" = String, description = "The job's status URL")),
        ),
    ),
)]
async fn import<M>(
    controller: Inject<M, dyn ExcelController>,
    ValidatedQuery(query): ValidatedQuery<ImportQuery>,
    req: HttpRequest,
    payload: web::Payload,
    // Last: a bad query is refused before the token costs a lookup.
    admin: Admin<M>,
) -> Result<HttpResponse, ServiceError>
where
    M: ModuleInterface + HasComponent<dyn ExcelController> + HasComponent<dyn AuthService> + ?Sized,
{
    controller.import(&req, payload, admin.id, query).await
}

/// The job id in `GET /excel/import/{id}`.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
struct JobPath {
    /// The id `POST /excel/import` answered (32 hex digits).
    #[param(pattern = "^[0-9a-f]{32}$")]
    id: String,
}

/// An import's progress and, once it ended, its report or error. Only the user who started it
/// sees it (anyone else: 404).
#[utoipa::path(
    get,
    path = "/excel/import/{id}",
    tag = "excel",
    operation_id = "excelImportJob",
    params(JobPath),
    security(("bearer" = ["admin"])),
    responses((status = 200, description = "The job.", body = ImportJobResponse)),
)]
async fn import_job<M>(
    controller: Inject<M, dyn ExcelController>,
    path: web::Path<JobPath>,
    admin: Admin<M>,
) -> Result<HttpResponse, ServiceError>
where
    M: ModuleInterface + HasComponent<dyn ExcelController> + HasComponent<dyn AuthService> + ?Sized,
{
    controller.job(admin.id, &path.id).await
}

/// The form field holding the workbook (the original's name).
pub const UPLOAD_FIELD: &str = "uploadFile";

/// Streams the multipart body into an anonymous temp file: the first `uploadFile` field is
/// kept, other fields are read past; the whole body is counted against `max_size` as it
/// arrives (a declared length over it is refused before reading) and must arrive within
/// `timeout`.
async fn receive_upload(
    req: &HttpRequest,
    payload: web::Payload,
    excel: &ExcelConfig,
) -> Result<File, ServiceError> {
    use futures_util::{StreamExt, TryStreamExt};
    use tokio::io::AsyncWriteExt;

    let too_large = || ServiceError::PayloadTooLarge {
        limit: usize::try_from(excel.max_upload_size).unwrap_or(usize::MAX),
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > excel.max_upload_size) {
        return Err(too_large());
    }
    let overflowed = Rc::new(Cell::new(false));
    let counted = {
        let (overflowed, max) = (overflowed.clone(), excel.max_upload_size);
        let mut total: u64 = 0;
        payload.map(move |chunk| {
            let chunk = chunk?;
            total += chunk.len() as u64;
            if total > max {
                overflowed.set(true);
                return Err(actix_web::error::PayloadError::Overflow);
            }
            Ok(chunk)
        })
    };
    let internal = |e: std::io::Error| ServiceError::Internal(Box::new(e));
    let file = match &excel.temp_path() {
        Some(dir) => tempfile::tempfile_in(dir),
        None => tempfile::tempfile(),
    }
    .map_err(internal)?;
    let mut writer = tokio::fs::File::from_std(file.try_clone().map_err(internal)?);
    let receive = async {
        let mut multipart = actix_multipart::Multipart::new(req.headers(), counted);
        let mut found = false;
        while let Some(mut field) = multipart.try_next().await? {
            let keep = !found && field.name() == Some(UPLOAD_FIELD);
            found |= keep;
            while let Some(chunk) = field.try_next().await? {
                if keep && let Err(e) = writer.write_all(&chunk).await {
                    return Ok(Err(e));
                }
            }
        }
        // The temp file's own failures (a full disk) are the server's: 500.
        if let Err(e) = writer.flush().await {
            return Ok(Err(e));
        }
        Ok::<_, actix_multipart::MultipartError>(Ok(found))
    };
    match tokio::time::timeout(excel.upload_timeout, receive).await {
        Err(_) => Err(ServiceError::RequestTimeout {
            timeout: excel.upload_timeout,
        }),
        Ok(_) if overflowed.get() => Err(too_large()),
        Ok(Ok(Err(e))) => Err(internal(e)),
        Ok(Ok(Ok(true))) => Ok(file),
        Ok(Ok(Ok(false))) => Err(ServiceError::NoUpload(
            "no file in the multipart form field uploadFile",
        )),
        Ok(Err(e)) => Err(ServiceError::NoUpload(match e {
            actix_multipart::MultipartError::ContentTypeMissing
            | actix_multipart::MultipartError::ContentTypeParse
            | actix_multipart::MultipartError::ContentTypeIncompatible
            | actix_multipart::MultipartError::BoundaryMissing => {
                "the body must be multipart/form-data with the file in the field uploadFile"
            }
            _ => "the multipart body is malformed or incomplete",
        })),
    }
}

const IMPORT_PAGE: &str = include_str!("../../views/index.html");

/// The original's upload page: sign in, pick a workbook, import it; export the users.
#[utoipa::path(
    get,
    path = "/excel/import_index",
    tag = "excel",
    operation_id = "excelImportIndex",
    responses((status = 200, description = "An HTML page that imports a workbook through POST /excel/import and downloads GET /excel/export (docs/excel.md).", content_type = "text/html")),
)]
async fn import_index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(IMPORT_PAGE)
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
    security(("bearer" = ["admin"])),
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
    // Last: a bad query is refused before the token costs a lookup. The route's caller (an
    // admin); the export names nobody.
    _admin: Admin<M>,
) -> Result<HttpResponse, ServiceError>
where
    M: ModuleInterface + HasComponent<dyn ExcelController> + HasComponent<dyn AuthService> + ?Sized,
{
    controller.export(query).await
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
