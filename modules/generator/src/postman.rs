//! The Postman collection gains one folder per generated resource, named after it and added once.
//! The file is rewritten in its own layout (2-space JSON, keys in their order, a final newline).

use serde_json::Value;

/// The collection's path in the project.
pub const COLLECTION: &str = "assets/postman/go_example.postman_collection.json";

/// `collection` with `folder` (a rendered folder object) appended to its items.
///
/// # Errors
/// The collection or the folder is not JSON, or a folder of that name exists.
pub fn with_folder(collection: &str, name: &str, folder: &str) -> Result<String, String> {
    let mut doc: Value = serde_json::from_str(collection).map_err(|e| format!("not JSON: {e}"))?;
    let folder: Value = serde_json::from_str(folder)
        .map_err(|e| format!("the rendered folder is not JSON: {e}"))?;
    let items = doc
        .get_mut("item")
        .and_then(Value::as_array_mut)
        .ok_or("no `item` array")?;
    if items.iter().any(|i| i["name"] == name) {
        return Err(format!("a folder `{name}` exists already"));
    }
    items.push(folder);
    serde_json::to_string_pretty(&doc)
        .map(|s| s + "\n")
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_projects_collection_is_rewritten_in_its_own_layout() {
        let text = include_str!("../../../assets/postman/go_example.postman_collection.json");
        let doc: Value = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string_pretty(&doc).unwrap() + "\n", text);
        let out = with_folder(text, "widgets", r#"{"name": "widgets", "item": []}"#).unwrap();
        let doc: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            doc["item"].as_array().unwrap().last().unwrap()["name"],
            "widgets"
        );
        assert!(with_folder(&out, "widgets", r#"{"name": "widgets", "item": []}"#).is_err());
    }
}
