// Secret values the end-to-end run hands the mirror; zz-logs.test.mjs checks none is ever logged.
export const ADMIN_TOKEN = 'adm-7f3c9e1d2b';
export const ACCESS = { id: 'access-id-42', secret: 'access-s3cr3t-value' };
export const MIRROR_LOGIN = { user: 'ci', password: 'm1rror-pa55' };
