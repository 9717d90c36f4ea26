/* SPDX-License-Identifier: MIT */
/*
 * ioas.c - the public iopt_ioas_* entry points: argument and flag validation
 * in the kernel's order, then io_pagetable.c (the kernel's ioas.c role).
 *
 * Each function checks its arguments as the matching IOMMU_IOAS_* ioctl does
 * (unknown flags -EOPNOTSUPP, values >= UINT64_MAX -EOVERFLOW, no READ/WRITE
 * -EINVAL), with one addition: a NULL handle or output pointer is -EINVAL,
 * checked first (the ioctl's bad object id is -ENOENT; a C caller has no id).
 * Every public function leaves through ioas_trace(), the one place a tracing
 * hook will attach, and the backstop of the refusal log: a refusal that no
 * lower layer explained gets a line naming the operation and the errno.
 *
 * Object ids: every IOAS gets a small id, unique in the process while it
 * lives, never 0 (the kernel's object id 0 is never valid). The /dev/iommu
 * emulation keeps its own id-to-object table over these.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <string.h>

#include <iopt/ioas.h>

#include "alloc.h"
#include "ctx.h"
#include "domain.h"
#include "io_pagetable.h"
#include "objid.h"

#define IOAS_MAP_FLAGS                                                         \
	(IOPT_IOAS_MAP_FIXED_IOVA | IOPT_IOAS_MAP_WRITEABLE |                  \
	 IOPT_IOAS_MAP_READABLE)

/* The tracing seam (iopt_ctx_trace()): every public call returns through it. */
static int ioas_trace(const char *op, struct iopt_ioas *ioas, int rc)
{
	return iopt_ctx_trace(ioas ? ioas->ctx : NULL, "ioas", iopt_ioas_id(ioas),
			      op, rc);
}

int iopt_ioas_alloc(struct iopt_ctx *ctx, struct iopt_ioas **out)
{
	struct iopt_ioas *ioas;

	if (!ctx || !out) {
		if (ctx)
			iopt_ctx_log(ctx, "ioas alloc: NULL output pointer");
		return ioas_trace("alloc", NULL, -EINVAL);
	}
	ioas = iopt_calloc(1, sizeof(*ioas));
	if (!ioas)
		return ioas_trace("alloc", NULL, -ENOMEM);
	iopt_init_table(&ioas->iopt);
	ioas->ctx = ctx;
	ioas->id = iopt_obj_id_alloc();
	iopt_ctx_obj_get(ctx);
	*out = ioas;
	return ioas_trace("alloc", ioas, 0);
}

/* Is anything attached that keeps the IOAS referenced? */
static bool ioas_busy(struct iopt_ioas *ioas)
{
	struct io_pagetable *iopt = &ioas->iopt;
	bool busy = iopt->ndomains != 0;
	size_t i;

	for (i = 0; i != iopt->naccess_slots && !busy; i++)
		busy = iopt->accesses[i].access != NULL;
	return busy;
}

int iopt_ioas_destroy(struct iopt_ioas *ioas)
{
	struct iopt_ctx *ctx;
	bool busy;

	if (!ioas)
		return ioas_trace("destroy", NULL, 0);
	iopt_rwlock_read(&ioas->iopt.domains_rwsem);
	busy = ioas_busy(ioas);
	iopt_rwlock_unlock(&ioas->iopt.domains_rwsem);
	if (busy)
		return ioas_trace("destroy", ioas, -EBUSY);

	/* nothing attached: no access can block, so this removes every area */
	(void)iopt_unmap_all(&ioas->iopt, NULL);
	iopt_destroy_table(&ioas->iopt);
	ctx = ioas->ctx;
	(void)ioas_trace("destroy", ioas, 0);
	iopt_free(ioas);
	iopt_ctx_obj_put(ctx);
	return 0;
}

uint32_t iopt_ioas_id(const struct iopt_ioas *ioas)
{
	return ioas ? ioas->id : 0;
}

/* IOPT_IOAS_MAP_* to IOPT_PROT_*; coherent DMA is always asked for. */
static int conv_iommu_prot(unsigned int flags)
{
	int prot = IOPT_PROT_CACHE;

	if (flags & IOPT_IOAS_MAP_WRITEABLE)
		prot |= IOPT_PROT_WRITE;
	if (flags & IOPT_IOAS_MAP_READABLE)
		prot |= IOPT_PROT_READ;
	return prot;
}

/*
 * The checks IOMMU_IOAS_MAP/MAP_FILE/COPY share, in the kernel's order:
 * flags, then every input IOVA and the length against overflow, then prot.
 * @src_iova is copy's source (0 for a map), checked with the rest as
 * IOMMU_IOAS_COPY does. *iova is read only for a fixed IOVA: otherwise it is
 * an output (the ioctl's field is always initialised, a C caller's output
 * variable need not be).
 */
static int check_map_args(struct iopt_ioas *ioas, const char *op,
			  const uint64_t *iova, uint64_t src_iova,
			  uint64_t length, unsigned int flags)
{
	if (flags & ~IOAS_MAP_FLAGS) {
		iopt_refuse(&ioas->iopt, "%s: unknown flags 0x%x", op,
			    flags & ~IOAS_MAP_FLAGS);
		return -EOPNOTSUPP;
	}
	if (((flags & IOPT_IOAS_MAP_FIXED_IOVA) && *iova >= UINT64_MAX) ||
	    src_iova >= UINT64_MAX || length >= UINT64_MAX) {
		iopt_refuse(&ioas->iopt, "%s: an IOVA or the length is "
			    "UINT64_MAX", op);
		return -EOVERFLOW;
	}
	if (!(flags & (IOPT_IOAS_MAP_WRITEABLE | IOPT_IOAS_MAP_READABLE))) {
		iopt_refuse(&ioas->iopt, "%s: neither READABLE nor WRITEABLE",
			    op);
		return -EINVAL;
	}
	return 0;
}

static unsigned int iopt_map_flags(unsigned int flags)
{
	return (flags & IOPT_IOAS_MAP_FIXED_IOVA) ? 0 : IOPT_ALLOC_IOVA;
}

/* Where a map's memory comes from: a user buffer or a memfd range. */
struct map_source {
	bool is_file;
	void *uptr;
	int memfd;
	uint64_t start;
};

static int ioas_map_source(struct iopt_ioas *ioas, const struct map_source *src,
			   uint64_t length, uint64_t *iova, unsigned int flags)
{
	uint64_t new_iova;
	int rc;

	if (!ioas || !iova)
		return -EINVAL;
	rc = check_map_args(ioas, src->is_file ? "map_file" : "map", iova, 0,
			    length, flags);
	if (rc)
		return rc;
	if (src->is_file && src->memfd < 0)
		return -EBADF;
	new_iova = (flags & IOPT_IOAS_MAP_FIXED_IOVA) ? *iova : 0;
	if (src->is_file)
		rc = iopt_map_file_pages(ioas->ctx, &ioas->iopt, &new_iova,
					 src->memfd, src->start, length,
					 conv_iommu_prot(flags),
					 iopt_map_flags(flags));
	else
		rc = iopt_map_user_pages(ioas->ctx, &ioas->iopt, &new_iova,
					 src->uptr, length,
					 conv_iommu_prot(flags),
					 iopt_map_flags(flags));
	if (!rc)
		*iova = new_iova;
	return rc;
}

int iopt_ioas_map(struct iopt_ioas *ioas, void *uptr, uint64_t length,
		  uint64_t *iova, unsigned int flags)
{
	struct map_source src = { .uptr = uptr };

	return ioas_trace("map", ioas,
			  ioas_map_source(ioas, &src, length, iova, flags));
}

int iopt_ioas_map_file(struct iopt_ioas *ioas, int memfd, uint64_t start,
		       uint64_t length, uint64_t *iova, unsigned int flags)
{
	struct map_source src = { .is_file = true, .memfd = memfd,
				  .start = start };

	return ioas_trace("map_file", ioas,
			  ioas_map_source(ioas, &src, length, iova, flags));
}

int iopt_ioas_unmap(struct iopt_ioas *ioas, uint64_t iova, uint64_t length,
		    uint64_t *unmapped)
{
	uint64_t bytes = 0;
	int rc;

	if (unmapped)
		*unmapped = 0;
	if (!ioas)
		return ioas_trace("unmap", ioas, -EINVAL);
	if (iova == 0 && length == UINT64_MAX) {
		rc = iopt_unmap_all(&ioas->iopt, &bytes);
	} else if (iova >= UINT64_MAX || length >= UINT64_MAX) {
		rc = -EOVERFLOW;
	} else {
		rc = iopt_unmap_iova(&ioas->iopt, iova, length, &bytes);
		/* the ioctl, not the iopt layer, calls "nothing there" ENOENT */
		if (!rc && !bytes)
			rc = -ENOENT;
	}
	if (unmapped)
		*unmapped = bytes;
	return ioas_trace("unmap", ioas, rc);
}

int iopt_ioas_unmap_all(struct iopt_ioas *ioas, uint64_t *unmapped)
{
	uint64_t bytes = 0;
	int rc;

	if (!ioas) {
		if (unmapped)
			*unmapped = 0;
		return ioas_trace("unmap_all", ioas, -EINVAL);
	}
	rc = iopt_unmap_all(&ioas->iopt, &bytes);
	if (unmapped)
		*unmapped = bytes;
	return ioas_trace("unmap_all", ioas, rc);
}

int iopt_ioas_copy(struct iopt_ioas *dst, uint64_t *dst_iova,
		   struct iopt_ioas *src, uint64_t src_iova, uint64_t length,
		   unsigned int flags)
{
	struct iopt_pages_list list = { 0 };
	uint64_t new_iova;
	int rc;

	if (!dst || !dst_iova || !src)
		return ioas_trace("copy", dst, -EINVAL);
	rc = check_map_args(dst, "copy", dst_iova, src_iova, length, flags);
	if (rc)
		return ioas_trace("copy", dst, rc);

	rc = iopt_get_pages(&src->iopt, src_iova, length, &list);
	if (rc)
		return ioas_trace("copy", dst, rc);
	new_iova = (flags & IOPT_IOAS_MAP_FIXED_IOVA) ? *dst_iova : 0;
	rc = iopt_map_pages(&dst->iopt, &list, length, &new_iova,
			    conv_iommu_prot(flags), iopt_map_flags(flags));
	if (!rc)
		*dst_iova = new_iova;
	iopt_free_pages_list(&list);
	return ioas_trace("copy", dst, rc);
}

static void free_allowed_tree(struct iopt_itree_root *root)
{
	struct iopt_itree_node *node;

	while ((node = iopt_itree_first(root))) {
		iopt_itree_remove(node, root);
		iopt_free(container_of(node, struct iopt_allowed, node));
	}
}

/* Build the tree for iopt_set_allow_iova(); on failure @root is freed. */
static int load_allowed(struct iopt_itree_root *root,
			const struct iopt_iova_range *ranges, size_t n)
{
	size_t i;

	for (i = 0; i != n; i++) {
		struct iopt_allowed *allowed;

		/* a one-byte range is refused too, as the kernel does */
		if (ranges[i].start >= ranges[i].last ||
		    iopt_itree_iter_first(root, ranges[i].start,
					  ranges[i].last))
			goto err_free;
		allowed = iopt_calloc(1, sizeof(*allowed));
		if (!allowed) {
			free_allowed_tree(root);
			return -ENOMEM;
		}
		allowed->node.start = ranges[i].start;
		allowed->node.last = ranges[i].last;
		iopt_itree_insert(&allowed->node, root);
	}
	return 0;

err_free:
	free_allowed_tree(root);
	return -EINVAL;
}

int iopt_ioas_allow_iovas(struct iopt_ioas *ioas,
			  const struct iopt_iova_range *ranges, size_t n)
{
	struct iopt_itree_root allowed = { 0 };
	int rc;

	if (!ioas || (n && !ranges))
		return ioas_trace("allow_iovas", ioas, -EINVAL);
	rc = load_allowed(&allowed, ranges, n);
	if (rc)
		return ioas_trace("allow_iovas", ioas, rc);
	rc = iopt_set_allow_iova(&ioas->iopt, &allowed);
	free_allowed_tree(&allowed);
	return ioas_trace("allow_iovas", ioas, rc);
}

int iopt_ioas_reserve(struct iopt_ioas *ioas, uint64_t start, uint64_t last,
		      const void *owner)
{
	int rc;

	if (!ioas || !owner || start > last)
		return ioas_trace("reserve", ioas, -EINVAL);
	/* lock-free readers never read the reserved ranges */
	iopt_iova_write_lock_beside_readers(&ioas->iopt);
	rc = iopt_reserve_iova(&ioas->iopt, start, last, owner);
	iopt_iova_write_unlock(&ioas->iopt);
	return ioas_trace("reserve", ioas, rc);
}

int iopt_ioas_unreserve(struct iopt_ioas *ioas, const void *owner)
{
	if (!ioas || !owner)
		return ioas_trace("unreserve", ioas, -EINVAL);
	iopt_remove_reserved_iova(&ioas->iopt, owner);
	return ioas_trace("unreserve", ioas, 0);
}

int iopt_ioas_iova_ranges(struct iopt_ioas *ioas,
			  struct iopt_iova_range *ranges, size_t *num,
			  uint64_t *alignment)
{
	struct iopt_span_iter span;
	size_t max, count = 0;

	if (!ioas || !num || (*num && !ranges))
		return ioas_trace("iova_ranges", ioas, -EINVAL);
	max = *num;
	iopt_rwlock_read(&ioas->iopt.iova_rwsem);
	if (alignment)
		*alignment = ioas->iopt.iova_alignment;
	iopt_for_each_span(&span, &ioas->iopt.reserved_itree, 0, UINT64_MAX) {
		if (!span.is_hole)
			continue;
		if (count < max)
			ranges[count] = (struct iopt_iova_range){
				.start = span.start_hole,
				.last = span.last_hole,
			};
		count++;
	}
	iopt_rwlock_unlock(&ioas->iopt.iova_rwsem);
	*num = count;
	return ioas_trace("iova_ranges", ioas, count > max ? -EMSGSIZE : 0);
}

int iopt_ioas_cut(struct iopt_ioas *ioas, const uint64_t *iovas, size_t n)
{
	if (!ioas || (n && !iovas))
		return ioas_trace("cut", ioas, -EINVAL);
	return ioas_trace("cut", ioas, iopt_cut_iova(&ioas->iopt, iovas, n));
}

int iopt_ioas_set_huge_pages(struct iopt_ioas *ioas, uint64_t value)
{
	int rc = 0;

	if (!ioas || value > 1)
		return ioas_trace("set_huge_pages", ioas, -EINVAL);
	if (value)
		iopt_enable_large_pages(&ioas->iopt);
	else
		rc = iopt_disable_large_pages(&ioas->iopt);
	return ioas_trace("set_huge_pages", ioas, rc);
}

int iopt_ioas_get_huge_pages(struct iopt_ioas *ioas, uint64_t *value)
{
	if (!ioas || !value)
		return ioas_trace("get_huge_pages", ioas, -EINVAL);
	iopt_rwlock_read(&ioas->iopt.iova_rwsem);
	*value = !ioas->iopt.disable_large_pages;
	iopt_rwlock_unlock(&ioas->iopt.iova_rwsem);
	return ioas_trace("get_huge_pages", ioas, 0);
}

int iopt_ioas_attach_domain(struct iopt_ioas *ioas, struct iopt_domain *domain)
{
	int rc;

	if (!ioas || !domain)
		return ioas_trace("attach_domain", ioas, -EINVAL);
	rc = iopt_domain_check(domain);
	if (!rc)
		rc = iopt_table_add_domain(&ioas->iopt, domain);
	return ioas_trace("attach_domain", ioas, rc);
}

void iopt_ioas_detach_domain(struct iopt_ioas *ioas, struct iopt_domain *domain)
{
	if (ioas && domain)
		iopt_table_remove_domain(&ioas->iopt, domain);
	(void)ioas_trace("detach_domain", ioas, 0);
}

int iopt_ioas_set_dirty_tracking(struct iopt_ioas *ioas,
				 struct iopt_domain *domain, bool enable)
{
	if (!ioas || !domain)
		return ioas_trace("set_dirty_tracking", ioas, -EINVAL);
	return ioas_trace("set_dirty_tracking", ioas,
			  iopt_set_dirty_tracking(&ioas->iopt, domain, enable));
}

int iopt_ioas_read_dirty(struct iopt_ioas *ioas, struct iopt_domain *domain,
			 uint64_t iova, uint64_t length, uint64_t page_size,
			 unsigned int flags, void *bitmap)
{
	int rc;

	if (!ioas || !domain || !bitmap)
		return ioas_trace("read_dirty", ioas, -EINVAL);
	if (flags & ~IOPT_DIRTY_NO_CLEAR)
		return ioas_trace("read_dirty", ioas, -EOPNOTSUPP);
	rc = iopt_read_and_clear_dirty_data(&ioas->iopt, domain, iova, length,
					    page_size, flags, bitmap);
	return ioas_trace("read_dirty", ioas, rc);
}
