/* Mechanism: the packed form of element lists (see nft_pack.h).
 *
 * Each record starts with a tag byte: its form in bits 7-6, the IPv6 flag
 * in bit 5, the set in bits 4-0 (NFT_SET_COUNT is below 32).
 *   FORM_ELEM:  key[key_len], then for a verdict map verdict and
 *               aff_timeout (varints) and aff_mode, for NFT_SET_RANGES
 *               plen, then data[data_len];
 *   FORM_SLOTS: a count (varint), the key prefix (key_len - 4 bytes, the
 *               frontend), then per element the 32-bit slot field as
 *               stored (a varint) and the endpoint address and port;
 *   FORM_HP:    the address of a hairpin pair;
 *   FORM_RAW:   the struct nft_elem verbatim (the set bits unused).
 */
#include "nft_pack.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>

#include "nft_state.h"

enum { FORM_ELEM = 0, FORM_SLOTS = 1, FORM_HP = 2, FORM_RAW = 3 };

#define TAG(form, v6, set) ((uint8_t)((form) << 6 | (v6) << 5 | (set)))
#define TAG_V6 0x20u

size_t nft_pack_bound(size_t n)
{
	/* The raw form is the longest: a tag and the struct. A slot run's
	 * header (count and prefix) is shorter than what its elements save. */
	return n * (1 + sizeof(struct nft_elem));
}

static uint8_t *put_varint(uint8_t *p, uint32_t v)
{
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

/* The varint at *p (before end) into *ret; NULL when it runs past end or
 * past 32 bits. */
static const uint8_t *get_varint(const uint8_t *p, const uint8_t *end, uint32_t *ret)
{
	uint32_t v = 0;

	for (unsigned shift = 0; p < end && shift < 35; shift += 7) {
		uint8_t b = *p++;

		v |= (uint32_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*ret = v;
			return p;
		}
	}
	return NULL;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static size_t addr_len(int family)
{
	return family == AF_INET6 ? 16 : 4;
}

/* Whether e's set and family have a packed form, and its lengths. */
static bool packable(const struct nft_elem *e, size_t *ret_klen, size_t *ret_dlen)
{
	size_t klen, dlen;

	if (e->set >= NFT_SET_COUNT || (e->family != AF_INET && e->family != AF_INET6))
		return false;
	klen = nft_set_key_len((enum nft_set_id)e->set, e->family);
	dlen = nft_set_data_len((enum nft_set_id)e->set, e->family);
	if (klen > sizeof(e->key) || dlen > sizeof(e->data))
		return false;
	*ret_klen = klen;
	*ret_dlen = dlen;
	return all_zero(e->key + klen, sizeof(e->key) - klen) && all_zero(e->data + dlen, sizeof(e->data) - dlen) &&
	       (e->set == NFT_SET_RANGES || e->plen == 0) &&
	       (nft_set_is_vmap((enum nft_set_id)e->set) || (!e->verdict && !e->aff_timeout && !e->aff_mode));
}

/* Can e join a slot run whose first element is first (NULL: start one)?
 * A slot element: no verdict fields, a 4-byte slot last in the key, the
 * endpoint address and port as data, nothing past them. */
static bool slot_elem(const struct nft_elem *e, const struct nft_elem *first)
{
	size_t klen, dlen, alen;

	if (!nft_state_is_slot_set(e->set) || !packable(e, &klen, &dlen) || e->verdict || e->aff_timeout ||
	    e->aff_mode || e->plen || klen < 4)
		return false;
	alen = addr_len(e->family);
	if (dlen < alen + 2 || !all_zero(e->data + alen + 2, sizeof(e->data) - alen - 2))
		return false;
	return !first || (first->set == e->set && first->family == e->family &&
			  memcmp(first->key, e->key, klen - 4) == 0);
}

/* Is e a hairpin pair of the form ferry writes (the address twice)? */
static bool hairpin_elem(const struct nft_elem *e)
{
	size_t klen, dlen, alen = addr_len(e->family);

	return e->set == NFT_SET_HAIRPIN && packable(e, &klen, &dlen) && klen == 2 * alen &&
	       memcmp(e->key, e->key + alen, alen) == 0;
}

size_t nft_pack_elems(const struct nft_elem *v, size_t n, uint8_t *out)
{
	uint8_t *p = out;

	for (size_t i = 0; i < n;) {
		const struct nft_elem *e = &v[i];
		bool v6 = e->family == AF_INET6;
		size_t klen, dlen, alen = addr_len(e->family);

		if (slot_elem(e, NULL)) {
			size_t k = i + 1;
			uint32_t slot;

			while (k < n && slot_elem(&v[k], e))
				k++;
			klen = nft_set_key_len((enum nft_set_id)e->set, e->family);
			*p++ = TAG(FORM_SLOTS, v6, e->set);
			p = put_varint(p, (uint32_t)(k - i));
			memcpy(p, e->key, klen - 4);
			p += klen - 4;
			for (; i < k; i++) {
				memcpy(&slot, v[i].key + klen - 4, 4);
				p = put_varint(p, slot);
				memcpy(p, v[i].data, alen + 2);
				p += alen + 2;
			}
			continue;
		}
		if (hairpin_elem(e)) {
			*p++ = TAG(FORM_HP, v6, e->set);
			memcpy(p, e->key, alen);
			p += alen;
		} else if (packable(e, &klen, &dlen)) {
			*p++ = TAG(FORM_ELEM, v6, e->set);
			memcpy(p, e->key, klen);
			p += klen;
			if (nft_set_is_vmap((enum nft_set_id)e->set)) {
				p = put_varint(p, e->verdict);
				p = put_varint(p, e->aff_timeout);
				*p++ = e->aff_mode;
			}
			if (e->set == NFT_SET_RANGES)
				*p++ = e->plen;
			memcpy(p, e->data, dlen);
			p += dlen;
		} else {
			*p++ = TAG(FORM_RAW, 0, 0);
			memcpy(p, e, sizeof(*e));
			p += sizeof(*e);
		}
		i++;
	}
	return (size_t)(p - out);
}

/* Take len bytes at *p (before end) into dst; false when they run past. */
static bool take(const uint8_t **p, const uint8_t *end, void *dst, size_t len)
{
	if ((size_t)(end - *p) < len)
		return false;
	memcpy(dst, *p, len);
	*p += len;
	return true;
}

int nft_pack_unpack(const uint8_t *p, size_t len, struct nft_elem *out, size_t n)
{
	const uint8_t *end = p + len;
	size_t i = 0;

	while (p < end) {
		uint8_t tag = *p++, set = tag & 0x1f;
		int family = tag & TAG_V6 ? AF_INET6 : AF_INET;
		size_t alen = addr_len(family), klen, dlen;
		const uint8_t *prefix;
		uint32_t count, u;
		struct nft_elem *e;

		if (tag >> 6 == FORM_RAW) {
			if (i == n || !take(&p, end, &out[i], sizeof(*out)))
				return -EINVAL;
			i++;
			continue;
		}
		if (set >= NFT_SET_COUNT)
			return -EINVAL;
		klen = nft_set_key_len((enum nft_set_id)set, family);
		dlen = nft_set_data_len((enum nft_set_id)set, family);
		switch (tag >> 6) {
		case FORM_SLOTS:
			if (!(p = get_varint(p, end, &count)) || count > n - i || klen < 4 || (size_t)(end - p) < klen - 4)
				return -EINVAL;
			prefix = p;
			p += klen - 4;
			for (uint32_t k = 0; k < count; k++) {
				e = &out[i++];
				nft_elem_init(e, (enum nft_set_id)set, family);
				memcpy(e->key, prefix, klen - 4);
				if (!(p = get_varint(p, end, &u)))
					return -EINVAL;
				memcpy(e->key + klen - 4, &u, 4);
				if (!take(&p, end, e->data, alen + 2))
					return -EINVAL;
			}
			break;
		case FORM_HP:
			if (i == n)
				return -EINVAL;
			e = &out[i++];
			nft_elem_init(e, (enum nft_set_id)set, family);
			if (!take(&p, end, e->key, alen))
				return -EINVAL;
			memcpy(e->key + alen, e->key, alen);
			break;
		default:
			if (i == n)
				return -EINVAL;
			e = &out[i++];
			nft_elem_init(e, (enum nft_set_id)set, family);
			if (!take(&p, end, e->key, klen))
				return -EINVAL;
			if (nft_set_is_vmap((enum nft_set_id)set)) {
				if (!(p = get_varint(p, end, &u)) || u > UINT16_MAX)
					return -EINVAL;
				e->verdict = (uint16_t)u;
				if (!(p = get_varint(p, end, &e->aff_timeout)) || !take(&p, end, &e->aff_mode, 1))
					return -EINVAL;
			}
			if (set == NFT_SET_RANGES && !take(&p, end, &e->plen, 1))
				return -EINVAL;
			if (!take(&p, end, e->data, dlen))
				return -EINVAL;
			break;
		}
	}
	return i == n ? 0 : -EINVAL;
}
