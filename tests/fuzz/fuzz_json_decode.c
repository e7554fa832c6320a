/* Fuzz target: Kubernetes objects as JSON. The input is one JSON text,
 * taken two ways: as a manifest *.json file (yaml_json_parse_json, then
 * the manifest decoding of check_kobj.c), and as a page of a list
 * response the way informer/kube_informer.c reads one (json_loadb,
 * metadata and items checked as it does), every item then going through
 * each decoder the API source may use (Service, EndpointSlice, Endpoints,
 * Node) in cluster mode. Seeds: corpus/json_decode/ (list pages and
 * objects as the API sends them), dictionary json_decode.dict. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "check_kobj.h"
#include "fuzz_check.h"
#include "yaml_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void as_manifest_file(const char *buf, size_t len)
{
	struct yaml_json_doc *docs = (void *)1;
	struct yaml_json_error err;
	size_t n = 1;
	int r;

	r = yaml_json_parse_json(buf, len, NULL, &docs, &n, &err);
	FUZZ_CHECK(r == 0 || r == -EINVAL || r == -ELOOP || r == -EFBIG || r == -ENOMEM);
	FUZZ_CHECK_TERMINATED(err.message);
	if (r < 0) {
		FUZZ_CHECK(docs == NULL && n == 0);
		return;
	}
	FUZZ_CHECK(n <= 1 && (n == 0) == (docs == NULL));
	if (n) {
		FUZZ_CHECK(docs[0].root && !json_is_null(docs[0].root) && docs[0].line == 1);
		check_kobj_json_roundtrip(docs[0].root);
		check_kobj_manifest_value(docs[0].root, NULL);
	}
	yaml_json_docs_free(docs, n);
}

/* kube_informer.c's list_apply_page: an object with metadata, items an
 * array (or absent or null); items that are not objects are skipped. */
static void as_list_page(const char *buf, size_t len)
{
	json_error_t jerr;
	json_t *root = json_loadb(buf, len, 0, &jerr);
	const json_t *items, *md, *item;
	size_t i;

	if (!root)
		return;
	items = json_object_get(root, "items");
	md = json_object_get(root, "metadata");
	if (json_is_object(md) && (!items || json_is_array(items) || json_is_null(items))) {
		json_array_foreach(items, i, item)
			if (json_is_object(item))
				check_kobj_api_object(item);
	} else if (json_is_object(root)) {
		/* Not a list: one object, as a watch event carries. */
		check_kobj_api_object(root);
	}
	json_decref(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	as_manifest_file((const char *)data, size);
	as_list_page((const char *)data, size);
	return 0;
}
