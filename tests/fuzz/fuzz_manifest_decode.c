/* Fuzz target: one manifest file, as informer/manifest_dir.c loads a
 * *.yaml file. The input is the file's bytes: yaml_json_parse turns them
 * into documents (YAML syntax, anchors, aliases, merge keys, the bounds on
 * depth, size and alias expansion), then every document and every item of
 * a List goes through kdecode_classify and the Service / EndpointSlice /
 * Endpoints decoders in standalone and cluster mode (check_kobj.c says
 * what is checked). Each document must also come back unchanged through
 * JSON text. Seeds: corpus/manifest_decode/ (manifests of tests/data and
 * examples/), dictionary manifest_decode.dict. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "check_kobj.h"
#include "fuzz_check.h"
#include "yaml_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct yaml_json_doc *docs = (void *)1;
	struct yaml_json_error err;
	size_t n = 1;
	int r;

	r = yaml_json_parse((const char *)data, size, NULL, &docs, &n, &err);
	FUZZ_CHECK(r == 0 || r == -EINVAL || r == -ELOOP || r == -EFBIG || r == -ENOMEM);
	FUZZ_CHECK_TERMINATED(err.message);
	if (r < 0) {
		/* A stream is all or nothing. */
		FUZZ_CHECK(docs == NULL && n == 0);
		FUZZ_CHECK(err.message[0] != '\0');
		return 0;
	}
	FUZZ_CHECK((n == 0) == (docs == NULL));
	for (size_t i = 0; i < n; i++) {
		FUZZ_CHECK(docs[i].root && !json_is_null(docs[i].root));
		FUZZ_CHECK(docs[i].line >= 1 && (i == 0 || docs[i].line >= docs[i - 1].line));
		check_kobj_json_roundtrip(docs[i].root);
		check_kobj_manifest_value(docs[i].root, NULL);
	}
	yaml_json_docs_free(docs, n);
	return 0;
}
