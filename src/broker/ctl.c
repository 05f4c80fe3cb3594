/* ctl.c - a request's metadata change (see ctl.h). */
#include "broker/ctl.h"

typedef struct owner {
    sp_req_t *req;
    sp_ctl_done_fn done;
} owner_t;

/* On the request's worker: the results are in. */
static void on_worker(sp_req_t *req, void *arg)
{
    sp_ctl_op_t *op = arg;
    owner_t *o = op->owner;
    o->done(req, op);
    sp_req_unref(req); /* sp_ctl_submit's */
}

/* On the metadata thread. */
static void settled(sp_ctl_op_t *op)
{
    owner_t *o = op->owner;
    sp_req_post(o->req, on_worker, op);
}

void sp_ctl_submit(sp_req_t *req, sp_ctl_op_t *op, sp_ctl_done_fn done)
{
    owner_t *o = sp_arena_alloc(&req->arena, sizeof(*o));
    if (!o) {
        sp_req_close(req, "out of memory for a metadata change");
        return;
    }
    o->req = req;
    o->done = done;
    op->arena = &req->arena;
    op->complete = settled;
    op->owner = o;
    sp_req_ref(req);
    sp_controller_submit(req->broker->controller, op);
}
