//! The tools: each takes its parameters (already checked against its schema by serde),
//! makes the query-service calls through [`horace_client::Client`], and returns its result
//! shape or a [`ToolError`] naming Horace's error.

use horace_client::{
    ClientError, DuplicatesQuery, FileRef, FileUpdate, QueryError, SearchQuery, SortKey, SortOrder,
};

use super::wire::{self, *};
use super::Server;

/// A tool call that failed: Horace's error name and its message.
#[derive(Debug)]
pub struct ToolError {
    /// InvalidPath, FileNotFound, VersionNotFound, PermissionDenied, …
    pub name: &'static str,
    /// The message, saying what to do.
    pub message: String,
}

impl ToolError {
    /// An invalid argument found before any call.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self {
            name: "InvalidArgument",
            message: message.into(),
        }
    }
}

impl From<ClientError> for ToolError {
    fn from(e: ClientError) -> Self {
        Self {
            name: e.name(),
            message: e.to_string(),
        }
    }
}

/// What a tool returns.
pub type Res<T> = Result<T, ToolError>;

/// A file named by the caller: digits (or `#N`, `id:N`) are Horace's id, anything else
/// a path.
pub fn file_ref(s: &str) -> Res<FileRef> {
    let s = s.trim();
    if s.is_empty() {
        return Err(ToolError::invalid("file_id is empty"));
    }
    match s.parse::<i64>() {
        Ok(n) => Ok(FileRef::Id(n)),
        Err(_) => Ok(FileRef::parse(s)),
    }
}

fn time_arg(what: &str, s: &Option<String>) -> Res<Option<i64>> {
    s.as_deref()
        .map(|t| {
            crate::cli::args::parse_time(t).map_err(|e| ToolError::invalid(format!("{what}: {e}")))
        })
        .transpose()
}

fn check_limit(limit: u32) -> Res<()> {
    if limit > horace_client::MAX_LIMIT {
        return Err(ToolError::invalid(format!(
            "limit {limit} is over the maximum of {}",
            horace_client::MAX_LIMIT
        )));
    }
    Ok(())
}

impl Server {
    /// Creates the collection unless it exists; whether it was created.
    async fn ensure_collection(&self, name: &str, description: Option<String>) -> Res<bool> {
        let c = self.client().await?;
        if c.collection_list().await?.iter().any(|x| x.name == name) {
            return Ok(false);
        }
        match c.collection_create(name, description).await {
            Ok(_) => Ok(true),
            // Created by someone else in between: it exists, which is what was asked.
            Err(ClientError::Query(QueryError::InvalidArgument { message }))
                if message.contains("already exists") =>
            {
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// `horace_register_file`.
    pub async fn register_file(&self, p: RegisterFileParams) -> Res<RegisterFileResult> {
        let m = p.metadata;
        if let Some(c) = &m.collection {
            self.ensure_collection(c, None).await?;
        }
        let u = FileUpdate {
            add_tags: m.tags,
            purpose: m.purpose,
            owner: m.owner,
            add_collections: m.collection.into_iter().collect(),
            correlation_id: m.correlation_id,
            ..Default::default()
        };
        let i = self
            .call(|c| async move { c.register_file(p.file_path, u).await })
            .await?;
        let f = &i.file;
        Ok(RegisterFileResult {
            file_id: f.id.to_string(),
            checksum: f.sha256.clone(),
            size: f.size,
            mime_type: f.mime.clone(),
            registered_at: time_ns(f.created_ns),
            version: f.current_version,
            path: self.paths.abs(&f.path),
        })
    }

    /// `horace_search_files`.
    pub async fn search_files(&self, p: SearchFilesParams) -> Res<SearchFilesResult> {
        check_limit(p.limit)?;
        let f = p.query;
        let (mime, extension) = match f.file_type.as_deref().map(str::trim) {
            None | Some("") => (None, None),
            Some(t) if t.contains('/') => (Some(t.to_owned()), None),
            Some(t) => (None, Some(t.trim_start_matches('.').to_owned())),
        };
        let q = SearchQuery {
            path_contains: f.path_contains,
            owner: f.owner,
            tags_all: f.tags,
            collection: f.collection,
            mime,
            extension,
            min_size: f.min_size,
            max_size: f.max_size,
            created_after: time_arg("created_after", &f.created_after)?,
            created_before: time_arg("created_before", &f.created_before)?,
            sha256: f.checksum,
            statuses: vec![f.status.unwrap_or(Status::Active).into()],
            sort: match p.sort_by {
                SortBy::CreatedAt => SortKey::Created,
                SortBy::UpdatedAt => SortKey::Updated,
                SortBy::Size => SortKey::Size,
                SortBy::Name => SortKey::Path,
            },
            order: match p.order {
                Order::Asc => SortOrder::Asc,
                Order::Desc => SortOrder::Desc,
            },
            limit: Some(p.limit),
            offset: p.offset,
            ..Default::default()
        };
        let r = self.call(|c| async move { c.search(q).await }).await?;
        Ok(SearchFilesResult {
            total_count: r.total,
            results: r.files.iter().map(|f| self.paths.file(f)).collect(),
            limit: p.limit,
            offset: p.offset,
        })
    }

    /// `horace_get_file_info`.
    pub async fn get_file_info(&self, p: GetFileInfoParams) -> Res<FileInfoResult> {
        let f = file_ref(&p.file_id)?;
        let i = self.call(|c| async move { c.file_info(f).await }).await?;
        Ok(self.paths.info(&i, p.include_versions))
    }

    /// `horace_list_versions`.
    pub async fn list_versions(&self, p: FileParams) -> Res<ListVersionsResult> {
        let f = file_ref(&p.file_id)?;
        let v = self.call(|c| async move { c.versions(f).await }).await?;
        Ok(ListVersionsResult {
            file: p.file_id,
            versions: v.iter().map(|v| self.paths.version(v)).collect(),
        })
    }

    /// `horace_create_collection`: creates it unless it exists, then adds `file_ids`; a
    /// collection this call created is deleted again if the files cannot be added.
    pub async fn create_collection(
        &self,
        p: CreateCollectionParams,
    ) -> Res<CreateCollectionResult> {
        if p.name.trim().is_empty() {
            return Err(ToolError::invalid("name is empty"));
        }
        let files = p
            .file_ids
            .iter()
            .map(|s| file_ref(s))
            .collect::<Res<Vec<_>>>()?;
        let created = self
            .ensure_collection(&p.name, p.description.clone())
            .await?;
        let c = self.client().await?;
        let mut added = 0;
        if !files.is_empty() {
            match c.collection_add(p.name.clone(), files).await {
                Ok(n) => added = n,
                Err(e) => {
                    if created {
                        let _ = c.collection_delete(p.name.clone()).await;
                    }
                    return Err(e.into());
                }
            }
        }
        let list = c.collection_list().await?;
        let info = list
            .iter()
            .find(|x| x.name == p.name)
            .ok_or_else(|| ToolError {
                name: "CollectionNotFound",
                message: format!("collection {:?} was deleted meanwhile", p.name),
            })?;
        let r = wire::collection(info);
        Ok(CreateCollectionResult {
            collection_id: r.collection_id,
            name: r.name,
            description: r.description,
            file_count: r.file_count,
            created_at: r.created_at,
            created,
            files_added: added,
        })
    }

    /// `horace_list_collections`.
    pub async fn list_collections(&self, p: ListCollectionsParams) -> Res<ListCollectionsResult> {
        check_limit(p.limit)?;
        let all = self
            .call(|c| async move { c.collection_list().await })
            .await?;
        Ok(ListCollectionsResult {
            total_count: all.len() as u64,
            collections: all
                .iter()
                .skip(usize::try_from(p.offset).unwrap_or(usize::MAX))
                .take(p.limit as usize)
                .map(wire::collection)
                .collect(),
        })
    }

    /// `horace_update_file`: metadata first, then (with check_for_changes) a fresh read of
    /// the file, which catalogs a new version if its content changed.
    pub async fn update_file(&self, p: UpdateFileParams) -> Res<UpdateFileResult> {
        let f = file_ref(&p.file_id)?;
        let c = self.client().await?;
        let before = c.file_info(f.clone()).await?;
        let m = p.metadata;
        let mut fields = Vec::new();
        let mut u = FileUpdate::default();
        if let Some(tags) = m.tags {
            fields.push("tags");
            let now = &before.file.tags;
            u.remove_tags = now.iter().filter(|t| !tags.contains(t)).cloned().collect();
            u.add_tags = tags.into_iter().filter(|t| !now.contains(t)).collect();
        }
        if let Some(purpose) = m.purpose {
            fields.push("purpose");
            u.purpose = Some(purpose);
        }
        if let Some(status) = m.status {
            fields.push("status");
            u.status = Some(status.into());
        }
        if let Some(collection) = m.collection {
            fields.push("collection");
            self.ensure_collection(&collection, None).await?;
            u.add_collections.push(collection);
        }
        if let Some(owner) = m.owner {
            fields.push("owner");
            u.owner = Some(owner);
        }
        if let Some(id) = m.correlation_id {
            fields.push("correlation_id");
            u.correlation_id = Some(id);
        }
        let id = FileRef::Id(before.file.id);
        let mut after = if u == FileUpdate::default() {
            before.clone()
        } else {
            c.update_file(id.clone(), u).await?
        };
        if p.check_for_changes {
            after = c
                .register_file(after.file.path.clone(), FileUpdate::default())
                .await?;
        }
        Ok(UpdateFileResult {
            file_id: before.file.id.to_string(),
            updated_fields: fields.into_iter().map(String::from).collect(),
            version_created: after.file.current_version != before.file.current_version,
            current_version: after.file.current_version,
        })
    }

    /// `horace_restore_version`.
    pub async fn restore_version(&self, p: RestoreVersionParams) -> Res<RestoreVersionResult> {
        if p.version < 1 {
            return Err(ToolError::invalid("version must be 1 or more"));
        }
        let f = file_ref(&p.file_id)?;
        let c = self.client().await?;
        let r = c.restore_version(f, p.version).await?;
        let info = c.file_info(FileRef::Id(r.file_id)).await?;
        Ok(RestoreVersionResult {
            file_id: r.file_id.to_string(),
            restored_to_version: r.restored_from,
            new_version_created: r.new_version,
            current_path: self.paths.abs(&info.file.path),
        })
    }

    /// `horace_find_duplicates`.
    pub async fn find_duplicates(&self, p: FindDuplicatesParams) -> Res<FindDuplicatesResult> {
        check_limit(p.limit)?;
        let q = DuplicatesQuery {
            min_size: p.min_size,
            limit: Some(p.limit),
            offset: p.offset,
        };
        let r = self.call(|c| async move { c.duplicates(q).await }).await?;
        Ok(FindDuplicatesResult {
            total_count: r.total_groups,
            groups: r.groups.iter().map(|g| self.paths.duplicates(g)).collect(),
        })
    }

    /// `horace_list_snapshots`.
    pub async fn list_snapshots(&self, _: NoParams) -> Res<ListSnapshotsResult> {
        let s = self.call(|c| async move { c.snapshots().await }).await?;
        Ok(ListSnapshotsResult {
            snapshots: s.iter().map(wire::snapshot).collect(),
        })
    }

    /// `horace_get_status`.
    pub async fn get_status(&self, _: NoParams) -> Res<StatusResult> {
        let s = self.call(|c| async move { c.status().await }).await?;
        Ok(wire::status(&s))
    }

    /// `horace_sync`.
    pub async fn sync(&self, _: NoParams) -> Res<SyncResult> {
        let s = self.call(|c| async move { c.sync().await }).await?;
        Ok(SyncResult {
            synced: s.is_synced(),
            missing: s
                .missing
                .iter()
                .map(|n| self.paths.not_cataloged(n))
                .collect(),
            more: s.more,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_ids_are_ids_and_the_rest_paths() {
        assert_eq!(file_ref("42").unwrap(), FileRef::Id(42));
        assert_eq!(file_ref("#7").unwrap(), FileRef::Id(7));
        assert_eq!(
            file_ref("/mnt/irina_storage/files/a.txt").unwrap(),
            FileRef::Path("/mnt/irina_storage/files/a.txt".into())
        );
        assert!(file_ref(" ").is_err());
    }

    #[test]
    fn not_found_is_named_by_what() {
        let name = |what: &str| {
            ToolError::from(ClientError::Query(QueryError::NotFound {
                what: what.into(),
            }))
            .name
        };
        assert_eq!(name("version 9 of file #1"), "VersionNotFound");
        assert_eq!(name("file #1"), "FileNotFound");
        assert_eq!(name("collection \"x\""), "CollectionNotFound");
    }
}
