//! The admin calls that librdkafka offers but the `rdkafka` crate does not wrap: ACLs
//! (CreateAcls, DescribeAcls, DeleteAcls) and SCRAM credentials
//! (DescribeUserScramCredentials, AlterUserScramCredentials), through `rdkafka-sys`.
//!
//! This is the only module of the CLI with `unsafe` code. Its API is safe: owned Rust
//! values ([`crate::admin_types`]) go in, owned Rust values come out. Each call follows librdkafka's admin
//! pattern: build the request objects, send them with a private result queue, wait for
//! the one result event, and copy what it holds before the event is destroyed.
//!
//! Invariants:
//! - Every librdkafka object this module creates is held by an [`Owned`] guard that
//!   destroys it exactly once, on every path, errors included.
//! - Pointers read out of a result event never outlive the event's guard: results are
//!   copied into `String`s and enums inside the function that holds the guard.
//! - librdkafka copies the request objects it is given (bindings, filters, user names,
//!   alterations), so they are destroyed by their guards as soon as the call returns.

use std::ffi::{c_char, CStr, CString};
use std::ptr::{self, NonNull};
use std::time::Duration;

use crate::admin_types::{
    AclBinding, AclFilter, AdminError, Operation, PatternFilter, PatternType, Permission,
    ResourceType, ScramAlteration, ScramCredential, ScramMechanism, UserDescription,
};
use anyhow::{anyhow, bail, Context};
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka_sys as sys;
use sys::{
    rd_kafka_AclOperation_t as COperation, rd_kafka_AclPermissionType_t as CPermission,
    rd_kafka_ResourcePatternType_t as CPattern, rd_kafka_ResourceType_t as CResource,
    rd_kafka_ScramMechanism_t as CMechanism,
};

/// Time given to librdkafka beyond the request timeout to deliver the result event
/// (a timed-out request is still answered, with a timeout error).
const RESULT_GRACE: Duration = Duration::from_secs(5);

/// The admin operation whose request-level errors librdkafka mishandles (see `call`).
const DESCRIBE_USERS: sys::rd_kafka_admin_op_t =
    sys::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBEUSERSCRAMCREDENTIALS;

/// Size of the buffers librdkafka writes argument errors into.
const ERRSTR_BYTES: usize = 512;

/// The ACL and SCRAM admin calls over one librdkafka client.
pub struct AdminApi {
    client: AdminClient<DefaultClientContext>,
    timeout: Duration,
}

impl AdminApi {
    /// Calls through `client`; each request may take `timeout`.
    pub fn new(client: AdminClient<DefaultClientContext>, timeout: Duration) -> Self {
        AdminApi { client, timeout }
    }

    /// CreateAcls: one result per binding, in order.
    pub fn create_acls(&self, acls: &[AclBinding]) -> anyhow::Result<Vec<Result<(), AdminError>>> {
        let natives = acls
            .iter()
            .map(native_binding)
            .collect::<anyhow::Result<Vec<_>>>()?;
        let event = self.call_with(
            sys::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_CREATEACLS,
            sys::rd_kafka_CreateAcls,
            &natives,
        )?;
        // SAFETY: the getters of a CreateAcls result.
        let results = unsafe {
            items(
                &event,
                sys::rd_kafka_event_CreateAcls_result,
                sys::rd_kafka_CreateAcls_result_acls,
            )
        }?;
        let errors = results
            .iter()
            // SAFETY: each result lives as long as `event`; its error is copied.
            .map(|&result| unsafe { item_error(sys::rd_kafka_acl_result_error(result)) });
        Ok(errors.collect())
    }

    /// DescribeAcls: every ACL that `filter` matches.
    pub fn describe_acls(&self, filter: &AclFilter) -> anyhow::Result<Vec<AclBinding>> {
        let native = native_filter(filter)?;
        let event = self.call(
            sys::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBEACLS,
            // SAFETY: `native` is a live filter; librdkafka copies it before returning.
            |rk, options, queue| unsafe {
                sys::rd_kafka_DescribeAcls(rk, native.as_ptr(), options, queue)
            },
        )?;
        // SAFETY: the getters of a DescribeAcls result.
        let acls = unsafe {
            items(
                &event,
                sys::rd_kafka_event_DescribeAcls_result,
                sys::rd_kafka_DescribeAcls_result_acls,
            )
        }?;
        // SAFETY: each binding lives as long as `event` and is copied.
        acls.iter()
            .map(|&acl| unsafe { read_binding(acl) })
            .collect()
    }

    /// DeleteAcls: for each filter in order, the ACLs it deleted or its error.
    pub fn delete_acls(
        &self,
        filters: &[AclFilter],
    ) -> anyhow::Result<Vec<Result<Vec<AclBinding>, AdminError>>> {
        let natives = filters
            .iter()
            .map(native_filter)
            .collect::<anyhow::Result<Vec<_>>>()?;
        let event = self.call_with(
            sys::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DELETEACLS,
            sys::rd_kafka_DeleteAcls,
            &natives,
        )?;
        // SAFETY: the getters of a DeleteAcls result.
        let responses = unsafe {
            items(
                &event,
                sys::rd_kafka_event_DeleteAcls_result,
                sys::rd_kafka_DeleteAcls_result_responses,
            )
        }?;
        let mut deleted = Vec::with_capacity(responses.len());
        for &response in responses {
            // SAFETY: `response` lives as long as `event`; its error is copied.
            if let Err(error) =
                unsafe { item_error(sys::rd_kafka_DeleteAcls_result_response_error(response)) }
            {
                deleted.push(Err(error));
                continue;
            }
            let mut count = 0;
            // SAFETY: `response` is live; librdkafka writes the count of the array it
            // returns, which lives as long as `event`.
            let acls = unsafe {
                let acls =
                    sys::rd_kafka_DeleteAcls_result_response_matching_acls(response, &mut count);
                array(acls, count)
            };
            // SAFETY: each binding lives as long as `event` and is copied.
            let acls = acls.iter().map(|&acl| unsafe { read_binding(acl) });
            deleted.push(Ok(acls.collect::<anyhow::Result<Vec<_>>>()?));
        }
        Ok(deleted)
    }

    /// DescribeUserScramCredentials of `users`, or of every user if it is empty.
    pub fn describe_users(&self, users: &[String]) -> anyhow::Result<Vec<UserDescription>> {
        let names = users
            .iter()
            .map(|user| c_string("user name", user))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut pointers: Vec<*const c_char> = names.iter().map(|name| name.as_ptr()).collect();
        let event = self.call(DESCRIBE_USERS, |rk, options, queue| {
            // SAFETY: `pointers` holds NUL-terminated names owned by `names` and its
            // length is passed along; librdkafka copies them before returning.
            unsafe {
                sys::rd_kafka_DescribeUserScramCredentials(
                    rk,
                    pointers.as_mut_ptr(),
                    pointers.len(),
                    options,
                    queue,
                )
            }
        })?;
        // SAFETY: the getters of a DescribeUserScramCredentials result.
        let descriptions = unsafe {
            items(
                &event,
                sys::rd_kafka_event_DescribeUserScramCredentials_result,
                sys::rd_kafka_DescribeUserScramCredentials_result_descriptions,
            )
        }?;
        descriptions
            .iter()
            // SAFETY: each description lives as long as `event` and is copied.
            .map(|&description| unsafe { read_user(description) })
            .collect()
    }

    /// AlterUserScramCredentials: per user name in the answer, its result.
    pub fn alter_users(
        &self,
        alterations: &[ScramAlteration],
    ) -> anyhow::Result<Vec<(String, Result<(), AdminError>)>> {
        let natives = alterations
            .iter()
            .map(native_alteration)
            .collect::<anyhow::Result<Vec<_>>>()?;
        let event = self.call_with(
            sys::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_ALTERUSERSCRAMCREDENTIALS,
            sys::rd_kafka_AlterUserScramCredentials,
            &natives,
        )?;
        // SAFETY: the getters of an AlterUserScramCredentials result.
        let responses = unsafe {
            items(
                &event,
                sys::rd_kafka_event_AlterUserScramCredentials_result,
                sys::rd_kafka_AlterUserScramCredentials_result_responses,
            )
        }?;
        let answers = responses
            .iter()
            // SAFETY: each response lives as long as `event`; user and error are copied.
            .map(|&response| unsafe {
                (
                    owned_string(
                        sys::rd_kafka_AlterUserScramCredentials_result_response_user(response),
                    ),
                    item_error(
                        sys::rd_kafka_AlterUserScramCredentials_result_response_error(response),
                    ),
                )
            });
        Ok(answers.collect())
    }

    /// Sends `objects` with `send`, which copies them, and waits for the result event.
    fn call_with<T>(
        &self,
        api: sys::rd_kafka_admin_op_t,
        send: ArrayCall<T>,
        objects: &[Owned<T>],
    ) -> anyhow::Result<Owned<sys::RDKafkaEvent>> {
        let mut pointers: Vec<*mut T> = objects.iter().map(Owned::as_ptr).collect();
        self.call(api, |rk, options, queue| {
            // SAFETY: `pointers` holds live objects (owned by `objects`) and its length
            // is passed along; `send` copies them before returning.
            unsafe { send(rk, pointers.as_mut_ptr(), pointers.len(), options, queue) }
        })
    }

    /// Sends one admin request with `send(client, options, queue)` and waits for its
    /// result event; a request-level error is returned as an [`AdminError`].
    fn call(
        &self,
        api: sys::rd_kafka_admin_op_t,
        send: impl FnOnce(*mut sys::RDKafka, *const sys::RDKafkaAdminOptions, *mut sys::RDKafkaQueue),
    ) -> anyhow::Result<Owned<sys::RDKafkaEvent>> {
        let rk = self.client.inner().native_ptr();
        // SAFETY: `rk` is the live client `self.client` owns; the queue is destroyed by
        // its guard (librdkafka keeps it alive while a request still refers to it).
        let queue = unsafe { Owned::new(sys::rd_kafka_queue_new(rk), sys::rd_kafka_queue_destroy) }
            .context("librdkafka could not create a result queue")?;
        // SAFETY: as above, for the options of `api`.
        let options = unsafe {
            Owned::new(
                sys::rd_kafka_AdminOptions_new(rk, api),
                sys::rd_kafka_AdminOptions_destroy,
            )
        }
        .context("librdkafka could not create admin options")?;
        let timeout_ms = millis(self.timeout);
        let mut errstr = [0 as c_char; ERRSTR_BYTES];
        // SAFETY: `options` is live and `errstr` is a writable buffer of the given size.
        let code = unsafe {
            sys::rd_kafka_AdminOptions_set_request_timeout(
                options.as_ptr(),
                timeout_ms,
                errstr.as_mut_ptr(),
                errstr.len(),
            )
        };
        if code != sys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            // SAFETY: librdkafka wrote a NUL-terminated message into `errstr`.
            bail!("invalid timeout: {}", unsafe {
                owned_string(errstr.as_ptr())
            });
        }
        send(rk, options.as_ptr(), queue.as_ptr());
        let wait_ms = millis(self.timeout + RESULT_GRACE);
        // SAFETY: `queue` is live; the event returned (if any) is ours to destroy.
        let event = unsafe {
            Owned::new(
                sys::rd_kafka_queue_poll(queue.as_ptr(), wait_ms),
                sys::rd_kafka_event_destroy,
            )
        }
        .with_context(|| {
            format!(
                "no answer within {} s",
                (self.timeout + RESULT_GRACE).as_secs()
            )
        })?;
        // SAFETY: `event` is live.
        let code = unsafe { sys::rd_kafka_event_error(event.as_ptr()) };
        if code == sys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            return Ok(event);
        }
        // librdkafka 2.12 keeps a broker's (positive) request-level error of
        // DescribeUserScramCredentials as a pointer to stack memory or to a static
        // string, and frees it with the event: reading it is undefined and destroying
        // the event aborts the process. Such an event is leaked (the CLI exits right
        // after) and only its code is used.
        let message = if api == DESCRIBE_USERS && (code as i32) > 0 {
            event.leak();
            String::new()
        } else {
            // SAFETY: `event` is live; its message lives as long as it and is copied.
            unsafe { owned_string(sys::rd_kafka_event_error_string(event.as_ptr())) }
        };
        Err(AdminError {
            code: code.into(),
            message,
        }
        .into())
    }
}

/// A librdkafka object that this module owns and destroys once, when dropped.
struct Owned<T> {
    ptr: NonNull<T>,
    destroy: unsafe extern "C" fn(*mut T),
}

impl<T> Owned<T> {
    /// Takes ownership of `ptr`; `None` if librdkafka returned null.
    ///
    /// # Safety
    /// `ptr` is null or a live object that `destroy` frees and that nothing else
    /// frees or uses after the guard is dropped.
    unsafe fn new(ptr: *mut T, destroy: unsafe extern "C" fn(*mut T)) -> Option<Self> {
        NonNull::new(ptr).map(|ptr| Owned { ptr, destroy })
    }

    fn as_ptr(&self) -> *mut T {
        self.ptr.as_ptr()
    }

    /// Gives up the object without destroying it (for objects librdkafka cannot
    /// destroy safely).
    fn leak(self) {
        std::mem::forget(self);
    }
}

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        // SAFETY: `new`'s contract: the object is live and only this guard frees it.
        unsafe { (self.destroy)(self.ptr.as_ptr()) }
    }
}

fn millis(duration: Duration) -> i32 {
    i32::try_from(duration.as_millis()).unwrap_or(i32::MAX)
}

/// A librdkafka admin call that takes an array of request objects (CreateAcls,
/// DeleteAcls, AlterUserScramCredentials).
type ArrayCall<T> = unsafe extern "C" fn(
    *mut sys::RDKafka,
    *mut *mut T,
    usize,
    *const sys::RDKafkaAdminOptions,
    *mut sys::RDKafkaQueue,
);

/// The array in `event`'s result, borrowed from `event`: `result_of` gets the result
/// (null for an event of another type), `items_of` its array and count.
///
/// # Safety
/// `result_of` and `items_of` are librdkafka's getters of one result type, which
/// return objects owned by the event.
unsafe fn items<R, I>(
    event: &Owned<sys::RDKafkaEvent>,
    result_of: unsafe extern "C" fn(*mut sys::RDKafkaEvent) -> *const R,
    items_of: unsafe extern "C" fn(*const R, *mut usize) -> *mut *const I,
) -> anyhow::Result<&[*const I]> {
    // SAFETY: `event` is live; the caller's contract.
    let result = unsafe { result_of(event.as_ptr()) };
    if result.is_null() {
        bail!("librdkafka answered with an event of another type");
    }
    let mut count = 0;
    // SAFETY: `result` lives as long as `event` (the caller's contract); librdkafka
    // writes the count of the array, which lives as long as `event` too.
    unsafe { Ok(array(items_of(result, &mut count), count)) }
}

/// `text` for C; `what` names it in the error if it contains a NUL byte.
fn c_string(what: &str, text: &str) -> anyhow::Result<CString> {
    CString::new(text).map_err(|_| anyhow!("the {what} {text:?} contains a NUL byte"))
}

fn optional_c_string(what: &str, text: Option<&str>) -> anyhow::Result<Option<CString>> {
    text.map(|text| c_string(what, text)).transpose()
}

fn c_ptr(text: &Option<CString>) -> *const c_char {
    text.as_ref().map_or(ptr::null(), |text| text.as_ptr())
}

/// The elements of a librdkafka result array.
///
/// # Safety
/// `items` is null or points to `count` pointers that stay valid for `'a`.
unsafe fn array<'a, T>(items: *mut *const T, count: usize) -> &'a [*const T] {
    if items.is_null() || count == 0 {
        return &[];
    }
    // SAFETY: the caller's contract.
    unsafe { std::slice::from_raw_parts(items, count) }
}

/// A copy of a C string (empty for null).
///
/// # Safety
/// `text` is null or a live NUL-terminated string.
unsafe fn owned_string(text: *const c_char) -> String {
    if text.is_null() {
        return String::new();
    }
    // SAFETY: the caller's contract.
    unsafe { CStr::from_ptr(text) }
        .to_string_lossy()
        .into_owned()
}

/// Ok for a null error or one without an error code.
///
/// # Safety
/// `error` is null or a live librdkafka error.
unsafe fn item_error(error: *const sys::rd_kafka_error_t) -> Result<(), AdminError> {
    if error.is_null() {
        return Ok(());
    }
    // SAFETY: the caller's contract.
    let code = unsafe { sys::rd_kafka_error_code(error) };
    if code == sys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        return Ok(());
    }
    // SAFETY: the caller's contract; the message lives as long as the error.
    let mut message = unsafe { owned_string(sys::rd_kafka_error_string(error)) };
    // librdkafka 2.12 copies a user's error message in DescribeUserScramCredentials
    // with `strdup` straight from the response buffer, where it is not NUL-terminated:
    // the bytes that follow it in the response (`\x01`, the empty credentials array)
    // end up in the text. No message has control characters of its own.
    if let Some(end) = message.find(char::is_control) {
        message.truncate(end);
    }
    Err(AdminError {
        code: code.into(),
        message,
    })
}

/// `rd_kafka_AclBinding_new` or `rd_kafka_AclBindingFilter_new` (same signature).
type AclConstructor = unsafe extern "C" fn(
    CResource,
    *const c_char,
    CPattern,
    *const c_char,
    *const c_char,
    COperation,
    CPermission,
    *mut c_char,
    usize,
) -> *mut sys::rd_kafka_AclBinding_t;

/// A new librdkafka ACL binding for `acl`.
fn native_binding(acl: &AclBinding) -> anyhow::Result<Owned<sys::rd_kafka_AclBinding_t>> {
    let filter = AclFilter {
        resource_type: Some(acl.resource_type),
        resource_name: Some(acl.resource_name.clone()),
        pattern: match acl.pattern {
            PatternType::Literal => PatternFilter::Literal,
            PatternType::Prefixed => PatternFilter::Prefixed,
        },
        principal: Some(acl.principal.clone()),
        host: Some(acl.host.clone()),
        operation: Some(acl.operation),
        permission: Some(acl.permission),
    };
    native_acl(sys::rd_kafka_AclBinding_new, "ACL", &filter)
}

/// A new librdkafka ACL binding filter for `filter`.
fn native_filter(filter: &AclFilter) -> anyhow::Result<Owned<sys::rd_kafka_AclBindingFilter_t>> {
    native_acl(sys::rd_kafka_AclBindingFilter_new, "ACL filter", filter)
}

/// A binding or filter made by `new` from `fields`; `what` names it in errors (which
/// librdkafka gives for a `None` that a binding needs).
fn native_acl(
    new: AclConstructor,
    what: &str,
    fields: &AclFilter,
) -> anyhow::Result<Owned<sys::rd_kafka_AclBinding_t>> {
    let name = optional_c_string("resource name", fields.resource_name.as_deref())?;
    let principal = optional_c_string("principal", fields.principal.as_deref())?;
    let host = optional_c_string("host", fields.host.as_deref())?;
    let mut errstr = [0 as c_char; ERRSTR_BYTES];
    // SAFETY: the strings are null or NUL-terminated and live for the call (librdkafka
    // copies them); `errstr` is a writable buffer of the given size.
    let acl = unsafe {
        new(
            c_resource(fields.resource_type),
            c_ptr(&name),
            match fields.pattern {
                PatternFilter::Literal => CPattern::RD_KAFKA_RESOURCE_PATTERN_LITERAL,
                PatternFilter::Prefixed => CPattern::RD_KAFKA_RESOURCE_PATTERN_PREFIXED,
                PatternFilter::Match => CPattern::RD_KAFKA_RESOURCE_PATTERN_MATCH,
                PatternFilter::Any => CPattern::RD_KAFKA_RESOURCE_PATTERN_ANY,
            },
            c_ptr(&principal),
            c_ptr(&host),
            c_operation(fields.operation),
            c_permission(fields.permission),
            errstr.as_mut_ptr(),
            errstr.len(),
        )
    };
    // SAFETY: a non-null binding is new and ours.
    let acl = unsafe { Owned::new(acl, sys::rd_kafka_AclBinding_destroy) };
    // SAFETY: on failure librdkafka wrote a NUL-terminated message into `errstr`.
    acl.ok_or_else(|| {
        anyhow!("invalid {what}: {}", unsafe {
            owned_string(errstr.as_ptr())
        })
    })
}

/// A new librdkafka SCRAM alteration for `alteration`.
fn native_alteration(
    alteration: &ScramAlteration,
) -> anyhow::Result<Owned<sys::rd_kafka_UserScramCredentialAlteration_t>> {
    let raw = match alteration {
        ScramAlteration::Upsert {
            user,
            mechanism,
            iterations,
            password,
        } => {
            let user = c_string("user name", user)?;
            // SAFETY: `user` is NUL-terminated and `password` is `len` readable bytes,
            // both live for the call (librdkafka copies them); a null salt with size 0
            // asks librdkafka for a random salt.
            unsafe {
                sys::rd_kafka_UserScramCredentialUpsertion_new(
                    user.as_ptr(),
                    c_mechanism(*mechanism),
                    *iterations,
                    password.as_ptr(),
                    password.len(),
                    ptr::null(),
                    0,
                )
            }
        }
        ScramAlteration::Delete { user, mechanism } => {
            let user = c_string("user name", user)?;
            // SAFETY: `user` is NUL-terminated and live for the call (librdkafka
            // copies it).
            unsafe {
                sys::rd_kafka_UserScramCredentialDeletion_new(
                    user.as_ptr(),
                    c_mechanism(*mechanism),
                )
            }
        }
    };
    // SAFETY: a non-null alteration is new and ours.
    unsafe { Owned::new(raw, sys::rd_kafka_UserScramCredentialAlteration_destroy) }
        .context("librdkafka could not create a SCRAM credential alteration")
}

/// A copy of a binding in a result.
///
/// # Safety
/// `acl` is a live librdkafka ACL binding.
unsafe fn read_binding(acl: *const sys::rd_kafka_AclBinding_t) -> anyhow::Result<AclBinding> {
    // SAFETY: the caller's contract; the strings live as long as `acl` and are copied.
    unsafe {
        Ok(AclBinding {
            resource_type: rust_resource(sys::rd_kafka_AclBinding_restype(acl))?,
            resource_name: owned_string(sys::rd_kafka_AclBinding_name(acl)),
            pattern: match sys::rd_kafka_AclBinding_resource_pattern_type(acl) {
                CPattern::RD_KAFKA_RESOURCE_PATTERN_LITERAL => PatternType::Literal,
                CPattern::RD_KAFKA_RESOURCE_PATTERN_PREFIXED => PatternType::Prefixed,
                other => bail!("the broker answered an ACL with pattern type {other:?}"),
            },
            principal: owned_string(sys::rd_kafka_AclBinding_principal(acl)),
            host: owned_string(sys::rd_kafka_AclBinding_host(acl)),
            operation: rust_operation(sys::rd_kafka_AclBinding_operation(acl))?,
            permission: match sys::rd_kafka_AclBinding_permission_type(acl) {
                CPermission::RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW => Permission::Allow,
                CPermission::RD_KAFKA_ACL_PERMISSION_TYPE_DENY => Permission::Deny,
                other => bail!("the broker answered an ACL with permission {other:?}"),
            },
        })
    }
}

/// A copy of a user description in a result.
///
/// # Safety
/// `description` is a live librdkafka user SCRAM credentials description.
unsafe fn read_user(
    description: *const sys::rd_kafka_UserScramCredentialsDescription_t,
) -> anyhow::Result<UserDescription> {
    // SAFETY: the caller's contract; everything read lives as long as `description`
    // and is copied.
    unsafe {
        let user = owned_string(sys::rd_kafka_UserScramCredentialsDescription_user(
            description,
        ));
        if let Err(error) = item_error(sys::rd_kafka_UserScramCredentialsDescription_error(
            description,
        )) {
            return Ok(UserDescription {
                user,
                credentials: Err(error),
            });
        }
        let count =
            sys::rd_kafka_UserScramCredentialsDescription_scramcredentialinfo_count(description);
        let mut credentials = Vec::with_capacity(count);
        for index in 0..count {
            let info = sys::rd_kafka_UserScramCredentialsDescription_scramcredentialinfo(
                description,
                index,
            );
            if info.is_null() {
                continue;
            }
            let mechanism = match sys::rd_kafka_ScramCredentialInfo_mechanism(info) {
                CMechanism::RD_KAFKA_SCRAM_MECHANISM_SHA_256 => ScramMechanism::Sha256,
                CMechanism::RD_KAFKA_SCRAM_MECHANISM_SHA_512 => ScramMechanism::Sha512,
                other => bail!("the broker answered user {user} with mechanism {other:?}"),
            };
            credentials.push(ScramCredential {
                mechanism,
                iterations: sys::rd_kafka_ScramCredentialInfo_iterations(info),
            });
        }
        Ok(UserDescription {
            user,
            credentials: Ok(credentials),
        })
    }
}

fn c_resource(resource: Option<ResourceType>) -> CResource {
    match resource {
        None => CResource::RD_KAFKA_RESOURCE_ANY,
        Some(ResourceType::Topic) => CResource::RD_KAFKA_RESOURCE_TOPIC,
        Some(ResourceType::Group) => CResource::RD_KAFKA_RESOURCE_GROUP,
        Some(ResourceType::Cluster) => CResource::RD_KAFKA_RESOURCE_BROKER,
        Some(ResourceType::TransactionalId) => CResource::RD_KAFKA_RESOURCE_TRANSACTIONAL_ID,
    }
}

fn rust_resource(resource: CResource) -> anyhow::Result<ResourceType> {
    Ok(match resource {
        CResource::RD_KAFKA_RESOURCE_TOPIC => ResourceType::Topic,
        CResource::RD_KAFKA_RESOURCE_GROUP => ResourceType::Group,
        CResource::RD_KAFKA_RESOURCE_BROKER => ResourceType::Cluster,
        CResource::RD_KAFKA_RESOURCE_TRANSACTIONAL_ID => ResourceType::TransactionalId,
        other => bail!("the broker answered an ACL with resource type {other:?}"),
    })
}

fn c_operation(operation: Option<Operation>) -> COperation {
    match operation {
        None => COperation::RD_KAFKA_ACL_OPERATION_ANY,
        Some(Operation::All) => COperation::RD_KAFKA_ACL_OPERATION_ALL,
        Some(Operation::Read) => COperation::RD_KAFKA_ACL_OPERATION_READ,
        Some(Operation::Write) => COperation::RD_KAFKA_ACL_OPERATION_WRITE,
        Some(Operation::Create) => COperation::RD_KAFKA_ACL_OPERATION_CREATE,
        Some(Operation::Delete) => COperation::RD_KAFKA_ACL_OPERATION_DELETE,
        Some(Operation::Alter) => COperation::RD_KAFKA_ACL_OPERATION_ALTER,
        Some(Operation::Describe) => COperation::RD_KAFKA_ACL_OPERATION_DESCRIBE,
        Some(Operation::ClusterAction) => COperation::RD_KAFKA_ACL_OPERATION_CLUSTER_ACTION,
        Some(Operation::DescribeConfigs) => COperation::RD_KAFKA_ACL_OPERATION_DESCRIBE_CONFIGS,
        Some(Operation::AlterConfigs) => COperation::RD_KAFKA_ACL_OPERATION_ALTER_CONFIGS,
        Some(Operation::IdempotentWrite) => COperation::RD_KAFKA_ACL_OPERATION_IDEMPOTENT_WRITE,
    }
}

fn rust_operation(operation: COperation) -> anyhow::Result<Operation> {
    Ok(match operation {
        COperation::RD_KAFKA_ACL_OPERATION_ALL => Operation::All,
        COperation::RD_KAFKA_ACL_OPERATION_READ => Operation::Read,
        COperation::RD_KAFKA_ACL_OPERATION_WRITE => Operation::Write,
        COperation::RD_KAFKA_ACL_OPERATION_CREATE => Operation::Create,
        COperation::RD_KAFKA_ACL_OPERATION_DELETE => Operation::Delete,
        COperation::RD_KAFKA_ACL_OPERATION_ALTER => Operation::Alter,
        COperation::RD_KAFKA_ACL_OPERATION_DESCRIBE => Operation::Describe,
        COperation::RD_KAFKA_ACL_OPERATION_CLUSTER_ACTION => Operation::ClusterAction,
        COperation::RD_KAFKA_ACL_OPERATION_DESCRIBE_CONFIGS => Operation::DescribeConfigs,
        COperation::RD_KAFKA_ACL_OPERATION_ALTER_CONFIGS => Operation::AlterConfigs,
        COperation::RD_KAFKA_ACL_OPERATION_IDEMPOTENT_WRITE => Operation::IdempotentWrite,
        other => bail!("the broker answered an ACL with operation {other:?}"),
    })
}

fn c_permission(permission: Option<Permission>) -> CPermission {
    match permission {
        None => CPermission::RD_KAFKA_ACL_PERMISSION_TYPE_ANY,
        Some(Permission::Allow) => CPermission::RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW,
        Some(Permission::Deny) => CPermission::RD_KAFKA_ACL_PERMISSION_TYPE_DENY,
    }
}

fn c_mechanism(mechanism: ScramMechanism) -> CMechanism {
    match mechanism {
        ScramMechanism::Sha256 => CMechanism::RD_KAFKA_SCRAM_MECHANISM_SHA_256,
        ScramMechanism::Sha512 => CMechanism::RD_KAFKA_SCRAM_MECHANISM_SHA_512,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_a_nul_byte_are_refused_before_librdkafka_sees_them() {
        let acl = AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: "ord\0ers".into(),
            pattern: PatternType::Literal,
            principal: "User:bob".into(),
            host: "*".into(),
            operation: Operation::Write,
            permission: Permission::Allow,
        };
        let error = native_binding(&acl).err().map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some("the resource name \"ord\\0ers\" contains a NUL byte")
        );
    }

    #[test]
    fn bindings_and_filters_are_built_and_freed() {
        let acl = AclBinding {
            resource_type: ResourceType::Cluster,
            resource_name: "kafka-cluster".into(),
            pattern: PatternType::Literal,
            principal: "User:bob".into(),
            host: "*".into(),
            operation: Operation::IdempotentWrite,
            permission: Permission::Deny,
        };
        assert!(native_binding(&acl).is_ok());
        assert!(native_filter(&AclFilter::default()).is_ok());
    }

    #[test]
    fn librdkafka_argument_errors_become_messages() {
        let incomplete = AclFilter {
            resource_type: Some(ResourceType::Topic),
            resource_name: Some("orders".into()),
            pattern: PatternFilter::Literal,
            principal: None,
            host: Some("*".into()),
            operation: Some(Operation::Read),
            permission: Some(Permission::Allow),
        };
        let error = native_acl(sys::rd_kafka_AclBinding_new, "ACL", &incomplete)
            .err()
            .map(|e| e.to_string());
        assert_eq!(error.as_deref(), Some("invalid ACL: Invalid principal"));
    }
}
