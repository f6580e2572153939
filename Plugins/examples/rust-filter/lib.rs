//! An example filter plugin written in Rust, with no crates: "spare-nodes" keeps tasks
//! off nodes whose hostname starts with "spare-", unless the service's name does too.
//! The #[repr(C)] types mirror Sources/SwarmPluginABI/include/swarm_plugin.h (ABI 1.1);
//! a view struct is declared only as far as the fields this plugin reads, which is
//! enough because the host passes pointers and the prefix layout is the same.
//!   rustc --edition 2021 --crate-type cdylib -O -o libswarm-spare-nodes.so lib.rs
//! (scripts/build-example-plugins.sh does this.)

use std::ffi::{c_char, c_void};

const ABI_MAJOR: u32 = 1;
const ABI_MINOR: u32 = 1;
const SWARM_OK: i32 = 0;
const SWARM_ERR_VERSION: i32 = 4;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct SwarmStr {
    data: *const c_char,
    len: usize,
}

impl SwarmStr {
    fn bytes(&self) -> &[u8] {
        if self.data.is_null() || self.len == 0 {
            &[]
        } else {
            unsafe { std::slice::from_raw_parts(self.data as *const u8, self.len) }
        }
    }
}

/// The leading fields of swarm_node_view.
#[repr(C)]
pub struct NodeView {
    struct_size: usize,
    id: SwarmStr,
    hostname: SwarmStr,
}

/// The leading fields of swarm_task_view.
#[repr(C)]
pub struct TaskView {
    struct_size: usize,
    id: SwarmStr,
    service_id: SwarmStr,
    service_name: SwarmStr,
}

#[repr(C)]
pub struct Filter {
    struct_size: usize,
    ctx: *mut c_void,
    check: extern "C" fn(*mut c_void, *const TaskView, *const NodeView) -> i32,
    explain: extern "C" fn(*mut c_void, u32) -> *const c_char,
}

#[repr(C)]
pub struct PluginInfo {
    struct_size: usize,
    abi_major: u32,
    abi_minor: u32,
    name: *const c_char,
    version: *const c_char,
}

#[repr(C)]
pub struct Host {
    struct_size: usize,
    abi_major: u32,
    abi_minor: u32,
    host_ctx: *mut c_void,
    register_filter: extern "C" fn(*mut c_void, *const c_char, *const Filter) -> i32,
    register_strategy: *const c_void,
    register_executor: *const c_void,
    log: extern "C" fn(*mut c_void, i32, *const c_char),
}

extern "C" fn check(_ctx: *mut c_void, task: *const TaskView, node: *const NodeView) -> i32 {
    let (task, node) = unsafe { (&*task, &*node) };
    let spare = node.hostname.bytes().starts_with(b"spare-");
    let wants_spare = task.service_name.bytes().starts_with(b"spare-");
    if spare && !wants_spare { 0 } else { 1 }
}

extern "C" fn explain(_ctx: *mut c_void, _rejected: u32) -> *const c_char {
    b"kept free as spare nodes\0".as_ptr() as *const c_char
}

#[no_mangle]
pub extern "C" fn swarm_plugin_init_v1(host: *const Host, info: *mut PluginInfo, error: *mut *const c_char) -> i32 {
    let (host, info) = unsafe { (&*host, &mut *info) };
    info.abi_major = ABI_MAJOR;
    info.abi_minor = ABI_MINOR;
    info.name = b"spare-nodes\0".as_ptr() as *const c_char;
    info.version = b"1.0.0\0".as_ptr() as *const c_char;
    if host.abi_major != ABI_MAJOR {
        unsafe { *error = b"built for another major version of the plugin ABI\0".as_ptr() as *const c_char };
        return SWARM_ERR_VERSION;
    }
    let filter = Filter {
        struct_size: std::mem::size_of::<Filter>(),
        ctx: std::ptr::null_mut(),
        check,
        explain,
    };
    let status = (host.register_filter)(host.host_ctx, b"spare-nodes\0".as_ptr() as *const c_char, &filter);
    if status == SWARM_OK {
        (host.log)(host.host_ctx, 1, b"spare-nodes filter ready\0".as_ptr() as *const c_char);
    }
    status
}
