/* Shared by the decoder fuzz targets: decode one JSON value the way a
 * source does (informer/kdecode.h) and check what comes out against the
 * decoders' contracts. Aborts on a violation. */
#ifndef FERRY_FUZZ_CHECK_KOBJ_H
#define FERRY_FUZZ_CHECK_KOBJ_H

#include <stdbool.h>

#include <jansson.h>

/* As informer/manifest_dir.c does for one document or list item (list: the
 * list it is an item of, or NULL): classify, then decode Services,
 * EndpointSlices and Endpoints, items of a List one level deep. Each object
 * is decoded in standalone mode (loopback allowed) and in cluster mode,
 * and what cluster mode accepts standalone mode must accept too. */
void check_kobj_manifest_value(const json_t *v, const json_t *list);

/* As informer/kube_source.c does for an object of a list or watch: it knows
 * the kind from the resource, not from the object, so obj goes through
 * every decoder (Service, EndpointSlice, Endpoints, Node) in cluster mode. */
void check_kobj_api_object(const json_t *obj);

/* The value survives a trip through jansson's encoder and ferry's JSON
 * reader (yaml_json_parse_json) unchanged: what yaml_json hands on is
 * valid JSON (UTF-8, no NaN...). */
void check_kobj_json_roundtrip(const json_t *v);

#endif
