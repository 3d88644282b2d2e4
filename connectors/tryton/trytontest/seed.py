# Seeds a Tryton 6.0 database that trytond-admin has just created with what a
# shop's ERP holds before any sync: a company (EUR), a chart of accounts with a
# fiscal year for the current year, a 19 % tax, the accounting category
# "Goods", payment terms, countries, a second user for negative login tests and
# the attribute "size". Run by trytontest with the server's configuration file
# and the database name: python3 seed.py CONF DATABASE PROBE_PASSWORD
import datetime
import sys
from decimal import Decimal

from proteus import Model, config

conf, database, probe_password = sys.argv[1:4]
config.set_trytond(database=database, config_file=conf)

from proteus import Wizard  # noqa: E402

# The scenario helpers of trytond's own tests (trytond.modules.*.tests.tools)
# cannot be imported outside its test runner, so their few steps are here.


def get_company():
    company, = Model.get('company.company').find()
    return company


def create_company(party, currency):
    wizard = Wizard('company.company.config')
    wizard.execute('company')
    wizard.form.party = party
    wizard.form.currency = currency
    wizard.execute('add')
    config.get_config()._context = Model.get('res.user').get_preferences(True, {})


def create_fiscalyear(company):
    today = datetime.date.today()
    Sequence = Model.get('ir.sequence')
    SequenceStrict = Model.get('ir.sequence.strict')
    SequenceType = Model.get('ir.sequence.type')
    move_type, = SequenceType.find([('name', '=', 'Account Move')], limit=1)
    move_sequence = Sequence(name=str(today.year), sequence_type=move_type, company=company)
    move_sequence.save()
    fiscalyear = Model.get('account.fiscalyear')(name=str(today.year))
    fiscalyear.start_date = datetime.date(today.year, 1, 1)
    fiscalyear.end_date = datetime.date(today.year, 12, 31)
    fiscalyear.company = company
    fiscalyear.post_move_sequence = move_sequence
    invoice_type, = SequenceType.find([('name', '=', 'Invoice')], limit=1)
    invoice_sequence = SequenceStrict(name=str(today.year), sequence_type=invoice_type, company=company)
    invoice_sequence.save()
    seq, = fiscalyear.invoice_sequences
    seq.out_invoice_sequence = seq.in_invoice_sequence = invoice_sequence
    seq.out_credit_note_sequence = seq.in_credit_note_sequence = invoice_sequence
    fiscalyear.save()
    return fiscalyear


def create_chart(company):
    data, = Model.get('ir.model.data').find(
        [('module', '=', 'account'), ('fs_id', '=', 'account_template_root_en')], limit=1)
    wizard = Wizard('account.create_chart')
    wizard.execute('account')
    wizard.form.account_template = Model.get('account.account.template')(data.db_id)
    wizard.form.company = company
    wizard.execute('create_account')
    accounts = get_accounts(company)
    wizard.form.account_receivable = accounts['receivable']
    wizard.form.account_payable = accounts['payable']
    wizard.execute('create_properties')


def get_accounts(company):
    Account = Model.get('account.account')
    accounts = {}
    for kind in ('receivable', 'payable', 'revenue', 'expense'):
        accounts[kind], = Account.find([('type.' + kind, '=', True), ('company', '=', company.id)], limit=1)
    accounts['tax'], = Account.find([('company', '=', company.id), ('name', '=', 'Main Tax')], limit=1)
    return accounts


def create_tax(rate, company):
    accounts = get_accounts(company)
    return Model.get('account.tax')(name='VAT 19%', description='VAT 19%', type='percentage', rate=rate,
                                    invoice_account=accounts['tax'], credit_note_account=accounts['tax'])


Currency = Model.get('currency.currency')
eur = Currency(name='Euro', code='EUR', symbol='€', rounding=Decimal('0.01'), digits=2)
eur.rates.new(date=datetime.date(2000, 1, 1), rate=Decimal('1'))
eur.save()

Party = Model.get('party.party')
shop = Party(name='Acceptance Test Shop GmbH')
shop.save()
create_company(party=shop, currency=eur)
company = get_company()

fiscalyear = create_fiscalyear(company)
fiscalyear.click('create_period')
create_chart(company)
accounts = get_accounts(company)

tax = create_tax(Decimal('0.19'), company)
tax.save()

Category = Model.get('product.category')
goods = Category(name='Goods', accounting=True)
goods.account_revenue = accounts['revenue']
goods.account_expense = accounts['expense']
goods.customer_taxes.append(tax)
goods.save()

PaymentTerm = Model.get('account.invoice.payment_term')
for name, days in (('Immediate', 0), ('Net 14', 14), ('Net 30', 30)):
    term = PaymentTerm(name=name)
    line = term.lines.new(type='remainder')
    if days:
        line.relativedeltas.new(days=days)
    term.save()

Country = Model.get('country.country')
for code, name in (('DE', 'Germany'), ('AT', 'Austria'), ('CH', 'Switzerland'), ('FR', 'France'),
                   ('NL', 'Netherlands'), ('BE', 'Belgium'), ('IT', 'Italy'), ('ES', 'Spain'),
                   ('GB', 'United Kingdom'), ('US', 'United States')):
    Country(code=code, name=name).save()

Attribute = Model.get('product.attribute')
size = Attribute(name='size', string='Size', type_='selection', selection='S:S\nM:M\nL:L\nXL:XL')
size.save()

User = Model.get('res.user')
probe = User(name='Login probe', login='probe', password=probe_password)
probe.companies.append(Model.get('company.company')(company.id))
probe.company = company
probe.save()
