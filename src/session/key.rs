//! Typed session keys: a key declared once with its value type, so that the compiler
//! checks every read and write made through it.

use std::fmt;
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Session};

/// A session key that holds values of type `T`: the Rust form of Remix's typed
/// `Session<Data, FlashData>`.
///
/// Declare it once, as a constant, and read and write through it: a value of another type
/// does not compile. The string-keyed [`Session`] methods see the same values under
/// [`name`](Key::name).
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use session_layer::{Key, Session};
///
/// #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
/// struct Item {
///     sku: String,
///     quantity: u32,
/// }
///
/// const CART: Key<Vec<Item>> = Key::new("cart");
/// const NOTICE: Key<String> = Key::new("notice");
///
/// # fn main() -> Result<(), session_layer::Error> {
/// let session = Session::new();
/// let item = Item { sku: "tea".into(), quantity: 2 };
/// // Re-applied at save time to the stored cart, so parallel requests lose no item.
/// CART.update(&session, move |cart| {
///     let mut cart = cart.unwrap_or_default();
///     cart.push(item.clone());
///     cart
/// })?;
/// NOTICE.flash(&session, "Added to your cart".to_owned())?;
/// assert_eq!(CART.get(&session).map(|cart| cart.len()), Some(1));
/// // CART.set(&session, "tea") would not compile: a cart is a Vec<Item>.
/// # Ok(())
/// # }
/// ```
pub struct Key<T> {
    name: &'static str,
    // `fn() -> T`: a key holds no `T`, so it is `Send`, `Sync` and `Copy` whatever `T` is.
    value: PhantomData<fn() -> T>,
}

impl<T> Key<T> {
    /// A key named `name` in the session.
    pub const fn new(name: &'static str) -> Self {
        Key {
            name,
            value: PhantomData,
        }
    }

    /// The key's name: what the string-keyed [`Session`] methods call it.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// Whether the session holds a value (or an incoming flash) under this key, as
    /// [`Session::has`].
    pub fn is_in(&self, session: &Session) -> bool {
        session.has(self.name)
    }

    /// Removes the value, as [`Session::unset`].
    pub fn unset(&self, session: &Session) -> Result<(), Error> {
        session.unset(self.name)
    }
}

impl<T: Serialize + DeserializeOwned> Key<T> {
    /// The value, else the incoming flash value, as [`Session::get`]: `None` when absent
    /// or not a `T`.
    pub fn get(&self, session: &Session) -> Option<T> {
        session.get(self.name)
    }

    /// Stores `value`, as [`Session::set`].
    pub fn set(&self, session: &Session, value: T) -> Result<(), Error> {
        session.set(self.name, value)
    }

    /// Sets a value readable on the next request only, as [`Session::flash`].
    pub fn flash(&self, session: &Session, value: T) -> Result<(), Error> {
        session.flash(self.name, value)
    }

    /// Sets the value to `f(current value)` and returns it, as [`Session::update`]: a
    /// server-side storage applies `f` again at save time to the value stored then.
    pub fn update<F>(&self, session: &Session, f: F) -> Result<T, Error>
    where
        F: Fn(Option<T>) -> T + Send + Sync + 'static,
    {
        session.update(self.name, f)
    }
}

// Written out rather than derived: a derive would ask `T` for the same trait, which a key
// never needs.
impl<T> Clone for Key<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Key<T> {}

impl<T> fmt::Debug for Key<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Key").field(&self.name).finish()
    }
}
